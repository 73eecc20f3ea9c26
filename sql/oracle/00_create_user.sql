-- streamscore: the database user that owns the streamscore tables and package.
--
-- For a DBA. Run it once, connected to the pluggable database (not the CDB root),
-- as SYSTEM or another user with CREATE USER and GRANT rights, e.g. with SQL*Plus:
--
--   sqlplus system@//localhost:1521/FREEPDB1 @sql/oracle/00_create_user.sql
--
-- SQL*Plus asks for app_password (typed hidden, never stored in this file).
-- Change app_user / the tablespace / the quota below to suit the site.
--
-- Least privilege: the user can log in and create its own tables and PL/SQL,
-- nothing else. It needs no grant for UTL_NLA, DBMS_LOB or UTL_RAW: Oracle grants
-- EXECUTE on them to PUBLIC. No CREATE SEQUENCE (the schema has no sequences or
-- identity columns), no CREATE VIEW/TYPE, no roles such as DB_DEVELOPER_ROLE or
-- RESOURCE, no UNLIMITED TABLESPACE, no *ANY* privilege.
--
-- Then connect the consumer with oracle://streamscore:<password>@host:1521/FREEPDB1
-- (or put the password in STREAMSCORE_ORACLE_PASSWORD); it creates the tables and
-- the package on start-up (sql/oracle/schema.sql, sql/oracle/mnist_scorer.sql).

-- VERIFY OFF: otherwise SQL*Plus echoes each substituted line ("old 1: ... new 1: ..."),
-- which would print the password in clear on the terminal and in any spool file.
-- WHENEVER SQLERROR: stop at the first failure instead of granting to a half-made user.
SET VERIFY OFF
WHENEVER SQLERROR EXIT FAILURE

DEFINE app_user = streamscore
ACCEPT app_password CHAR PROMPT 'Password for the new streamscore user: ' HIDE

CREATE USER &app_user IDENTIFIED BY "&app_password"
  DEFAULT TABLESPACE users
  QUOTA 2G ON users;

GRANT CREATE SESSION, CREATE TABLE, CREATE PROCEDURE TO &app_user;

UNDEFINE app_password
