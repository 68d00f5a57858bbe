-- amoroute on PostgreSQL: one database and one role per service (edge, router, referral, traffic,
-- notifier). Each role owns its database and
-- nothing else, and may not even connect to the others: a service never reads another's tables.
-- The migration Jobs then create the tables as that role (deploy/README.md, "Databases").
--
-- Run once per cluster as a superuser (on managed PostgreSQL: its admin role), with a password
-- per role (the same ones go into the *_DATABASE_URL keys of the Secret):
--
--   psql "postgresql://postgres@<db-host>:5432/postgres" -v ON_ERROR_STOP=1 \
--     -v edge_password="$EDGE_DB_PASSWORD" -v router_password="$ROUTER_DB_PASSWORD" \
--     -v referral_password="$REFERRAL_DB_PASSWORD" \
--     -v traffic_password="$TRAFFIC_DB_PASSWORD" -v notifier_password="$NOTIFIER_DB_PASSWORD" \
--     -f deploy/postgres-setup.sql
--
-- Safe to run again: an existing role gets the given password, an existing database is kept.
-- On managed PostgreSQL where CREATE DATABASE ... OWNER is refused, first
-- `GRANT amoroute_<service> TO <admin role>;` for each role.

\set ON_ERROR_STOP 1

-- Roles: log in, nothing more (no CREATEDB, CREATEROLE, superuser, replication).
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY[
  'amoroute_edge', 'amoroute_router', 'amoroute_referral', 'amoroute_traffic',
  'amoroute_notifier']) AS r
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE amoroute_edge NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'edge_password';
ALTER ROLE amoroute_router NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'router_password';
ALTER ROLE amoroute_referral NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'referral_password';
ALTER ROLE amoroute_traffic NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'traffic_password';
ALTER ROLE amoroute_notifier NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'notifier_password';

-- Databases, each owned by its service's role (UTF-8: deal names and UTM values are Cyrillic too).
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', d, d, 'UTF8')
FROM unnest(ARRAY['amoroute_edge', 'amoroute_router', 'amoroute_referral', 'amoroute_traffic',
  'amoroute_notifier']) AS d
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec

-- By default every role may connect to every database (PUBLIC has CONNECT and TEMPORARY): take
-- that away, so only the owner (and superusers) get in.
REVOKE ALL ON DATABASE amoroute_edge FROM PUBLIC;
REVOKE ALL ON DATABASE amoroute_router FROM PUBLIC;
REVOKE ALL ON DATABASE amoroute_referral FROM PUBLIC;
REVOKE ALL ON DATABASE amoroute_traffic FROM PUBLIC;
REVOKE ALL ON DATABASE amoroute_notifier FROM PUBLIC;

-- The schema `public` of each database: owned by the service's role, closed to everyone else
-- (PostgreSQL before 15 lets PUBLIC create objects in it; 15+ owns it by pg_database_owner).
\connect amoroute_edge
ALTER SCHEMA public OWNER TO amoroute_edge;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect amoroute_router
ALTER SCHEMA public OWNER TO amoroute_router;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect amoroute_referral
ALTER SCHEMA public OWNER TO amoroute_referral;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect amoroute_traffic
ALTER SCHEMA public OWNER TO amoroute_traffic;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
\connect amoroute_notifier
ALTER SCHEMA public OWNER TO amoroute_notifier;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
