-- Role defaults of the application roles (psql -v ON_ERROR_STOP=1 -f verify/role_defaults.sql,
-- as the owner role). Read-only. A role may change its own defaults (ALTER ROLE ... SET needs no
-- privilege for one's own role): app_user could switch on debug_print_plan for itself, so that
-- every new connection writes its plans, proofs included, into the server log; make every
-- transaction read-only; or drop its statement_timeout backstop. Raises with one line per stored
-- default (pg_db_role_setting) of app_user, app_bi or a BI login (a member of app_bi), in any
-- database or all databases, and per database-wide default of this database (ALTER DATABASE,
-- ALTER ROLE ALL), that is not on the allow-list app.role_defaults_allowed()
-- (policies/role_defaults.sql: the two timeouts of the API role within bounds, and settings that
-- only switch logging off), and per missing backstop; each names the setting and the exact FIX.
-- Prints "role_defaults: ok" when every default is allowed.
-- Optional: -v app_role=<name> (default app_user), -v bi_role=<name> (default app_bi).
\ir app_roles.psql

do $verify$
declare
  fails text[];
  checked bigint;
begin
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  if to_regprocedure('app.role_default_problems(text, text)') is null then
    raise exception E'role_defaults: 1 failure(s)\nFAIL function app.role_default_problems(text, text): does not exist, so role defaults cannot be judged. FIX: deploy/apply-policies.sh (policies/role_defaults.sql)';
  end if;
  select array_agg(format('FAIL role %s: default %s%s %s (%s). FIX: %s',
           coalesce(p.role_name, 'ALL (every role)'), p.setting, coalesce(' = ' || p.value, ''),
           case when p.database_name is null then 'in every database' else format('in database %s', p.database_name) end,
           p.problem, p.fix) order by p.role_name nulls first, p.database_name nulls first, p.setting)
    into fails
    from app.role_default_problems(current_setting('verify.app_role'), current_setting('verify.bi_role')) p;
  if fails is not null then
    raise exception E'role_defaults: % failure(s)\n%', cardinality(fails), array_to_string(fails, E'\n');
  end if;
  select count(*) into checked from pg_catalog.pg_db_role_setting s, unnest(s.setconfig);
  raise notice 'role_defaults: ok (% stored defaults in the cluster read; those reaching %, % and BI logins are on the allow-list)',
    checked, current_setting('verify.app_role'), current_setting('verify.bi_role');
end
$verify$;
