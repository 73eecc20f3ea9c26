#!/usr/bin/env node
// Parses Oracle SQL and PL/SQL units with an independent grammar: the ANTLR grammars-v4
// PlSql grammar, as generated and published by the npm package antlr4ts-sql (pinned in
// package.json beside this file; install with `npm ci --prefix tests/plsql`).
//
// Input, on stdin, a JSON list of units:
//   [{"name": "...", "file": "sql/oracle/mnist_scorer.sql", "line": 87, "text": "CREATE ..."}]
// where "line" is the file line the text's first line is on. Or file paths as arguments:
// each file is then parsed whole, as one unit starting at line 1.
//
// Output, on stdout, one line per error, with the unit's lines mapped back to the file:
//   sql/oracle/mnist_scorer.sql:231:8: [body] mismatched input 'P' expecting ...
// With --json, a JSON list instead: per unit its name, the grammar rules of its top-level
// statements (e.g. ["create_package_body"]) and its errors ({file, line, column, message}).
// Exit status: 0 no error, 1 syntax errors, 2 could not run (bad input, package missing).
"use strict";

const fs = require("fs");

let antlr, PlSqlLexer, PlSqlParser;
try {
  antlr = require("antlr4ts");
  ({ PlSqlLexer } = require("antlr4ts-sql/dist/src/grammar-output/plsql/PlSqlLexer"));
  ({ PlSqlParser } = require("antlr4ts-sql/dist/src/grammar-output/plsql/PlSqlParser"));
} catch (error) {
  process.stderr.write(`parse_plsql: ${error.message}\nrun: npm ci --prefix tests/plsql\n`);
  process.exit(2);
}

// ANTLR lists every token it expected: hundreds of keywords. Keep the first few.
const EXPECTING = /expecting \{([^}]*)\}/;
function shorten(message) {
  return message.replace(EXPECTING, (_all, list) => {
    const tokens = list.split(", ");
    return tokens.length <= 8 ? `expecting {${list}}` : `expecting {${tokens.slice(0, 8).join(", ")}, … ${tokens.length - 8} more}`;
  });
}

// This vintage of the grammar lexes upper-case keywords only (grammars-v4 then expected the
// caller to wrap the input in a case-changing stream). Upper-casing ASCII letters keeps every
// line and column, and changes nothing the parser decides on (string and quoted-identifier
// contents are single tokens whatever their case).
function upper(text) {
  return text.replace(/[a-z]+/g, (word) => word.toUpperCase());
}

function parseUnit(unit) {
  const started = Date.now();
  const errors = [];
  const listener = {
    syntaxError(_recognizer, _symbol, line, column, message) {
      errors.push({ file: unit.file, line: unit.line + line - 1, column: column + 1, message: shorten(message) });
    },
  };
  const lexer = new PlSqlLexer(antlr.CharStreams.fromString(upper(unit.text)));
  lexer.removeErrorListeners();
  lexer.addErrorListener(listener);
  const parser = new PlSqlParser(new antlr.CommonTokenStream(lexer));
  parser.removeErrorListeners();
  parser.addErrorListener(listener);
  // full LL prediction (the default): the faster SLL mode reports errors in mnist_scorer.sql
  // that LL does not (SLL may fail where LL succeeds); LL takes about two seconds for it
  const tree = parser.sql_script(); // ((unit_statement | sql_plus_command) ';'?)* EOF
  const statements = [];
  for (const child of tree.children || []) {
    const inner = child.childCount > 0 ? child.getChild(0) : null;
    if (inner && inner.ruleIndex !== undefined) {
      statements.push(PlSqlParser.ruleNames[inner.ruleIndex]);
    }
  }
  return { name: unit.name, file: unit.file, statements, errors, ms: Date.now() - started };
}

function readUnits(argv) {
  const files = argv.filter((arg) => !arg.startsWith("--"));
  if (files.length > 0) {
    return files.map((file) => ({ name: file, file, line: 1, text: fs.readFileSync(file, "utf8") }));
  }
  const units = JSON.parse(fs.readFileSync(0, "utf8"));
  if (!Array.isArray(units)) throw new Error("stdin: expected a JSON list of {name, file, line, text}");
  return units;
}

function main() {
  const argv = process.argv.slice(2);
  let units;
  try {
    units = readUnits(argv);
  } catch (error) {
    process.stderr.write(`parse_plsql: ${error.message}\n`);
    return 2;
  }
  const results = units.map(parseUnit);
  if (argv.includes("--json")) {
    process.stdout.write(JSON.stringify(results) + "\n");
  } else {
    for (const result of results) {
      for (const e of result.errors) {
        process.stdout.write(`${e.file}:${e.line}:${e.column}: [${result.name}] ${e.message}\n`);
      }
    }
  }
  return results.some((result) => result.errors.length > 0) ? 1 : 0;
}

process.exitCode = main();
