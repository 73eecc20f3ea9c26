"""Every ``UTL_NLA`` call of sql/oracle/mnist_scorer.sql against the documented signatures.

The signatures are kept here as data (Oracle Database PL/SQL Packages and Types Reference,
"UTL_NLA": argument order, types, IN OUT, defaults). Checked: the argument count, each
argument's declared type (resolved from the enclosing subprogram's declarations, then the
package's), flag values, IN OUT arguments being variables, and for column-major operands the
leading dimensions (lda = m, ldb = k, ldc = m for 'N'), which no compiler checks. Part of
issue 16 item 9; the SQL statements are parsed in test_oracle_sql_parse.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from streamscore.backends.sqlfiles import read_sql

# -- UTL_NLA signatures (documented), as data ----------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    type: str           # "flag" (CHAR(1)), "POSITIVEN", "SCALAR_FLOAT", "UTL_NLA_ARRAY_FLT", …
    mode: str = "IN"
    default: str | None = None


def _gemm(array: str, scalar: str) -> tuple[Param, ...]:
    return (
        Param("transa", "flag"), Param("transb", "flag"),
        Param("m", "POSITIVEN"), Param("n", "POSITIVEN"), Param("k", "POSITIVEN"),
        Param("alpha", scalar), Param("a", array), Param("lda", "POSITIVEN"),
        Param("b", array), Param("ldb", "POSITIVEN"), Param("beta", scalar),
        Param("c", array, "IN OUT"), Param("ldc", "POSITIVEN"), Param("pack", "flag", default="'C'"),
    )


def _gemv(array: str, scalar: str) -> tuple[Param, ...]:
    return (
        Param("trans", "flag"), Param("m", "POSITIVEN"), Param("n", "POSITIVEN"),
        Param("alpha", scalar), Param("a", array), Param("lda", "POSITIVEN"),
        Param("x", array), Param("incx", "POSITIVEN"), Param("beta", scalar),
        Param("y", array, "IN OUT"), Param("incy", "POSITIVEN"), Param("pack", "flag", default="'C'"),
    )


#: function → overloads (single and double precision; all arrays and scalars of one precision)
UTL_NLA_SIGNATURES: dict[str, tuple[tuple[Param, ...], ...]] = {
    "BLAS_GEMM": (_gemm("UTL_NLA_ARRAY_FLT", "SCALAR_FLOAT"), _gemm("UTL_NLA_ARRAY_DBL", "SCALAR_DOUBLE")),
    "BLAS_GEMV": (_gemv("UTL_NLA_ARRAY_FLT", "SCALAR_FLOAT"), _gemv("UTL_NLA_ARRAY_DBL", "SCALAR_DOUBLE")),
}
FLAG_VALUES = {"transa": "NTC", "transb": "NTC", "trans": "NTC", "pack": "CR"}
#: declared PL/SQL types an argument of the documented type accepts without conversion
ACCEPTS = {
    "POSITIVEN": {"PLS_INTEGER", "BINARY_INTEGER", "SIMPLE_INTEGER", "POSITIVE", "POSITIVEN", "NATURAL"},
    "SCALAR_FLOAT": {"BINARY_FLOAT", "SIMPLE_FLOAT", "SCALAR_FLOAT"},
    "SCALAR_DOUBLE": {"BINARY_DOUBLE", "SIMPLE_DOUBLE", "SCALAR_DOUBLE"},
    "UTL_NLA_ARRAY_FLT": {"UTL_NLA_ARRAY_FLT"},
    "UTL_NLA_ARRAY_DBL": {"UTL_NLA_ARRAY_DBL"},
}


# -- a small reader of the package body -----------------------------------------------------


def strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def package_body() -> str:
    source = read_sql("oracle", "mnist_scorer.sql")
    return strip_comments(source[source.index("CREATE OR REPLACE PACKAGE BODY"):])


def split_arguments(text: str) -> list[str]:
    """Top-level comma-separated arguments of a call's parenthesised text."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


@dataclass(frozen=True)
class Call:
    function: str
    arguments: list[str]
    at: int  # offset in the body


def utl_nla_calls(body: str) -> list[Call]:
    calls = []
    for match in re.finditer(r"UTL_NLA\.(\w+)\s*\(", body, flags=re.IGNORECASE):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(body[end], 0)
            end += 1
        calls.append(Call(match.group(1).upper(), split_arguments(body[match.end(): end - 1]), match.start()))
    return calls


def declared_type(body: str, at: int, expression: str) -> str | None:
    """The declared type of a variable, constant or record field (last name of a path)."""
    name = re.findall(r"\w+", expression)[-1]
    headers = list(re.finditer(r"\b(?:PROCEDURE|FUNCTION)\s+\w+", body[:at], flags=re.IGNORECASE))
    scopes = []
    if headers:
        start = headers[-1].start()
        scopes.append(body[start: body.upper().index("BEGIN", start)])
    scopes.append(body[: re.search(r"\b(?:PROCEDURE|FUNCTION)\s+\w+", body, flags=re.IGNORECASE).start()])  # type: ignore[union-attr]
    pattern = rf"\b{re.escape(name)}\s+(?:IN\s+OUT\s+NOCOPY\s+|IN\s+OUT\s+|IN\s+|OUT\s+)?(?:CONSTANT\s+)?(\w+)"
    for scope in scopes:
        found = re.search(pattern, scope, flags=re.IGNORECASE)
        if found:
            return found.group(1).upper()
    return None


def lint_call(body: str, call: Call) -> list[str]:
    """Problems of one call against every documented overload (empty: one overload fits)."""
    overloads = UTL_NLA_SIGNATURES.get(call.function)
    if overloads is None:
        return [f"UTL_NLA.{call.function} is not a documented subprogram"]
    problems: list[list[str]] = []
    for params in overloads:
        found: list[str] = []
        required = [p for p in params if p.default is None]
        if any("=>" in argument for argument in call.arguments):
            found.append("named notation: the lint (and the notes) use positional arguments")
        if not len(required) <= len(call.arguments) <= len(params):
            found.append(f"{len(call.arguments)} arguments, documented {len(required)}..{len(params)}")
            problems.append(found)
            continue
        given = dict(zip([p.name for p in params], call.arguments, strict=False))
        for param, argument in zip(params, call.arguments, strict=False):
            if param.type == "flag":
                literal = re.fullmatch(r"'(.)'", argument)
                if not literal or literal.group(1).upper() not in FLAG_VALUES[param.name]:
                    found.append(f"{param.name}={argument}: one of {FLAG_VALUES[param.name]} as a literal")
                continue
            if re.fullmatch(r"\d+", argument):
                if param.type != "POSITIVEN" or int(argument) < 1:
                    found.append(f"{param.name}={argument}: a NUMBER literal for {param.type}")
                continue
            if re.fullmatch(r"\d+(\.\d+)?[fF]", argument):
                kind = "BINARY_FLOAT"
            elif re.fullmatch(r"\d+(\.\d+)?[dD]", argument):
                kind = "BINARY_DOUBLE"
            elif re.fullmatch(r"[\w.()]+", argument):
                kind = declared_type(body, call.at, argument) or "?"
            else:
                found.append(f"{param.name}={argument}: an expression; bind a variable of {param.type}")
                continue
            if kind not in ACCEPTS[param.type]:
                found.append(f"{param.name}={argument}: declared {kind}, documented {param.type}")
            if param.mode == "IN OUT" and (not re.fullmatch(r"[\w.()]+", argument) or kind == "?"):
                found.append(f"{param.name}={argument}: IN OUT needs a variable")
        pack = given.get("pack", "'C'").upper()
        if not found and pack == "'C'":  # column-major: leading dimension = rows of the stored matrix
            found += leading_dimension_problems(call.function, given)
        problems.append(found)
        if not found:
            return []
    return min(problems, key=len)


def leading_dimension_problems(function: str, given: dict[str, str]) -> list[str]:
    found = []
    same = [("transa", "lda", "m", "k"), ("transb", "ldb", "k", "n"), (None, "ldc", "m", "m")]
    if function == "BLAS_GEMV":
        same = [("trans", "lda", "m", "m")]
    for trans, ld, rows_if_n, rows_if_t in same:
        rows = rows_if_n if trans is None or given[trans].upper() == "'N'" else rows_if_t
        if given[ld].lower() != given[rows].lower():
            found.append(f"{ld}={given[ld]}: column-major storage needs {ld} = {rows} ({given[rows]})")
    return found


def test_every_utl_nla_call_matches_a_documented_signature() -> None:
    body = package_body()
    calls = utl_nla_calls(body)
    assert [call.function for call in calls] == ["BLAS_GEMM"]
    for call in calls:
        assert lint_call(body, call) == [], call


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("l_out);                           -- ldc", "l_in);", "ldc=l_in"),            # wrong ldc
        ("l_out,                            -- lda", "l_in,", "lda=l_in"),              # wrong lda
        ("c_one,                            -- alpha", "1,", "NUMBER literal"),        # overload ambiguity
        ("'N', 'N',", "'N', 'X',", "transb='X'"),
        ("z,                                -- c = z'", "x + z,", "an expression"),
        ("l_out);                           -- ldc", "l_out, 'C', 1);", "arguments"),  # one too many
    ],
)
def test_the_lint_finds_broken_calls(old: str, new: str, problem: str) -> None:
    source = read_sql("oracle", "mnist_scorer.sql")
    assert old in source
    broken = strip_comments(source.replace(old, new)[source.index("CREATE OR REPLACE PACKAGE BODY"):])
    (call,) = utl_nla_calls(broken)
    assert any(problem in found for found in lint_call(broken, call)), lint_call(broken, call)
