-- streamscore: the database user that owns the streamscore tables and package.
--
-- For a DBA. Run it once, connected to the pluggable database (not the CDB root),
-- as SYSTEM or another user with CREATE USER and GRANT rights, with the new user's
-- name as the argument, e.g. with SQL*Plus:
--
--   sqlplus system@//localhost:1521/FREEPDB1 @sql/oracle/00_create_user.sql streamscore
--
-- In the docker compose service the image has created APP_USER (streamscore) already,
-- with DB_DEVELOPER_ROLE: give the least-privilege user another name there, e.g.
--
--   docker compose exec oracle sqlplus system@//localhost/FREEPDB1 @/opt/streamscore/sql/oracle/00_create_user.sql streamscore_app
--
-- SQL*Plus asks for app_password (typed hidden, never stored in this file). The script
-- stops, creating nothing, when the user exists or when it runs in the CDB root (never
-- put it in the image's /container-entrypoint-initdb.d: that runs as SYS in the root,
-- with no terminal for the prompt). Change the tablespace / the quota below to suit the
-- site (docs/oracle.md, "Space", has the sizing).
--
-- Least privilege: the user can log in and create its own tables and PL/SQL,
-- nothing else. It needs no grant for UTL_NLA, DBMS_LOB, UTL_RAW or DBMS_UTILITY: Oracle
-- grants EXECUTE on them to PUBLIC. No CREATE SEQUENCE (the schema has no sequences or
-- identity columns), no CREATE VIEW/TYPE, no roles such as DB_DEVELOPER_ROLE or
-- RESOURCE, no UNLIMITED TABLESPACE, no *ANY* privilege.
--
-- Then connect the consumer with oracle://<user>:<password>@host:1521/FREEPDB1
-- (or put the password in STREAMSCORE_ORACLE_PASSWORD); it creates the tables and
-- the package on start-up (sql/oracle/schema.sql, sql/oracle/mnist_scorer.sql).

-- VERIFY OFF: otherwise SQL*Plus echoes each substituted line ("old 1: ... new 1: ..."),
-- which would print the password in clear on the terminal and in any spool file.
-- WHENEVER SQLERROR: stop at the first failure instead of granting to a half-made user.
SET VERIFY OFF
WHENEVER SQLERROR EXIT FAILURE

DEFINE app_user = &1

-- refuse before anything is created: an existing user (ORA-01920 otherwise, half-way),
-- or the CDB root (a common user would need a C## name and lands in every PDB)
DECLARE
  l_users PLS_INTEGER;
BEGIN
  IF SYS_CONTEXT('USERENV', 'CON_NAME') = 'CDB$ROOT' THEN
    RAISE_APPLICATION_ERROR(-20000, 'connected to the CDB root: connect to the PDB '
      || '(e.g. system@//localhost:1521/FREEPDB1) and run this script again');
  END IF;
  SELECT COUNT(*) INTO l_users FROM all_users WHERE username = UPPER('&app_user');
  IF l_users > 0 THEN
    RAISE_APPLICATION_ERROR(-20000, 'user &app_user exists already (the docker compose '
      || 'image creates APP_USER): pass another name, e.g. @00_create_user.sql streamscore_app');
  END IF;
END;
/

ACCEPT app_password CHAR PROMPT 'Password for the new user &app_user: ' HIDE

CREATE USER &app_user IDENTIFIED BY "&app_password"
  DEFAULT TABLESPACE users
  QUOTA 2G ON users;

GRANT CREATE SESSION, CREATE TABLE, CREATE PROCEDURE TO &app_user;

-- Only for oracle://…?onnx=1 (Oracle 23ai's ONNX runtime; docs/oracle.md "ONNX"): remove the
-- leading dashes to let the user load ONNX models (DBMS_VECTOR.LOAD_ONNX_MODEL).
-- GRANT CREATE MINING MODEL TO &app_user;

UNDEFINE app_password
