-- Role defaults: what the application roles' stored defaults (pg_db_role_setting, written by
-- ALTER ROLE ... [IN DATABASE ...] SET, ALTER DATABASE ... SET and ALTER ROLE ALL ... SET) may
-- hold. A role may change its own defaults: measured, app_user ran
-- `alter role app_user set debug_print_plan = on` for itself, and every new connection then wrote
-- its plans, proofs included, into the server log; `default_transaction_read_only = on` broke
-- every request; `alter role app_user reset statement_timeout` dropped its own backstop.
-- So the defaults are judged against the allow-list below, the one place it is written:
-- verify/role_defaults.sql fails on anything outside it, verify/statement_logging.sql reads the
-- same rows for what the server logs, and /readyz answers 503 ROLE_DEFAULTS_CHANGED when the
-- API role's own defaults leave it (app.role_defaults_changed()).
-- Re-appliable: create or replace. Applied right after policies/roles.sql (the roles exist);
-- it also sets the API role's backstops, at the values recommended here.

/*
 * The allow-list. applies_to: 'api' for the API's login role (app_user), 'any' for every
 * application role and for database-wide defaults (ALTER DATABASE, ALTER ROLE ALL), which reach
 * every role; BI logins get only the 'any' entries. A value is allowed when it lies within
 * [min_value, max_value] in the unit (ms, B (bytes), real) or is one of allowed_values (enum,
 * bool). required: the API role must carry it for every database, at the recommended value as
 * policies/roles.sql sets it. Everything else a default could hold is refused.
 */
create or replace function app.role_defaults_allowed()
returns table (applies_to text, setting text, unit text, min_value numeric, max_value numeric, allowed_values text[],
               required boolean, recommended text, reason text)
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  values
    ('api', 'statement_timeout', 'ms', 1000::numeric, 60000::numeric, null::text[], true, '5s',
     'the backstop for whatever skips the API''s per-transaction timeouts; it holds behind PgBouncer in transaction mode, which refuses it as a startup parameter. 1 s to 60 s: shorter cancels ordinary requests, longer or 0 is no backstop'),
    ('api', 'idle_in_transaction_session_timeout', 'ms', 1000, 300000, null, true, '10s',
     'ends a transaction the API left open (and its locks); 1 s to 5 min'),
    ('any', 'log_parameter_max_length', 'B', 0, 0, null, false, '0',
     'only 0: keeps bind parameters (context proofs) out of statement logs for the role'),
    ('any', 'log_parameter_max_length_on_error', 'B', 0, 0, null, false, '0',
     'only 0: keeps bind parameters out of the log lines of failed statements'),
    ('any', 'log_min_duration_statement', 'ms', -1, -1, null, false, '-1',
     'only -1: exempts the role from slow-statement logging'),
    ('any', 'log_min_duration_sample', 'ms', -1, -1, null, false, '-1',
     'only -1: exempts the role from sampled statement logging'),
    ('any', 'log_transaction_sample_rate', 'real', 0, 0, null, false, '0',
     'only 0: exempts the role from logging sampled transactions'),
    ('any', 'log_statement', 'enum', null, null, array['none', 'ddl', 'mod'], false, 'none',
     'none, ddl or mod: proofs travel in a SELECT, which only ''all'' logs'),
    ('any', 'auto_explain.log_min_duration', 'ms', -1, -1, null, false, '-1',
     'only -1: exempts the role from auto_explain, whose plans show custom plans'' constants')
$$;
revoke execute on function app.role_defaults_allowed() from public;

/*
 * A stored setting value in the allow-list's unit: '5s' -> 5000 (ms), '1kB' -> 1024 (B),
 * '0.5' -> 0.5 (real). A bare number is already in the unit (the base unit of the settings
 * listed). NULL when the value is not a number with a known unit.
 */
create or replace function app.setting_in_unit(p_value text, p_unit text) returns numeric
language sql immutable parallel safe
set search_path = pg_catalog, pg_temp
as $$
  select m[1]::numeric * case coalesce(m[2], '')
           when '' then 1
           when 'us' then case p_unit when 'ms' then 0.001 end
           when 'ms' then case p_unit when 'ms' then 1 end
           when 's' then case p_unit when 'ms' then 1000 end
           when 'min' then case p_unit when 'ms' then 60000 end
           when 'h' then case p_unit when 'ms' then 3600000 end
           when 'd' then case p_unit when 'ms' then 86400000 end
           when 'B' then case p_unit when 'B' then 1 end
           when 'kB' then case p_unit when 'B' then 1024 end
           when 'MB' then case p_unit when 'B' then 1048576 end
           when 'GB' then case p_unit when 'B' then 1073741824 end
           when 'TB' then case p_unit when 'B' then 1099511627776 end
         end
    from (select regexp_match(trim(both from p_value), '^(-?[0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)$') as m) x
$$;
revoke execute on function app.setting_in_unit(text, text) from public;

/*
 * Every stored default that reaches the application roles and is not allowed, and every
 * required backstop the API role lacks. Subjects: p_app_role (the API role), p_bi_role and its
 * direct members (BI logins; not the role running this, nor the owner of schema app, which are
 * members only to probe as it), in any database or all databases; database-wide defaults of the
 * current database and ALTER ROLE ALL defaults (role_name NULL). database_name NULL: every
 * database. fix is the exact command that puts it right.
 */
create or replace function app.role_default_problems(p_app_role text, p_bi_role text)
returns table (role_name text, database_name text, setting text, value text, problem text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  with subjects as (
    select r.oid, r.rolname::text as rolname, case when r.rolname = p_app_role then 'api' else 'bi' end as kind
      from pg_catalog.pg_roles r
     where r.rolname in (p_app_role, p_bi_role)
        or (r.oid in (select m.member from pg_catalog.pg_auth_members m join pg_catalog.pg_roles b on b.oid = m.roleid where b.rolname = p_bi_role)
            and r.rolname <> current_user
            and r.oid is distinct from (select n.nspowner from pg_catalog.pg_namespace n where n.nspname = 'app'))
  ),
  stored as (
    select s.setrole, s.setdatabase, sj.rolname, coalesce(sj.kind, 'all') as kind, d.datname::text as datname,
           split_part(c, '=', 1) as name, substr(c, strpos(c, '=') + 1) as val
      from pg_catalog.pg_db_role_setting s
      left join subjects sj on sj.oid = s.setrole
      left join pg_catalog.pg_database d on d.oid = s.setdatabase
      cross join lateral unnest(s.setconfig) c
     where sj.oid is not null
        or (s.setrole = 0 and s.setdatabase in (0, (select d2.oid from pg_catalog.pg_database d2 where d2.datname = current_database())))
  ),
  judged as (
    select st.*, a.setting as allowed_name, a.unit, a.min_value, a.max_value, a.allowed_values, a.required, a.recommended,
           case when a.unit in ('ms', 'B', 'real') then app.setting_in_unit(st.val, a.unit) end as amount
      from stored st
      left join app.role_defaults_allowed() a
        on a.setting = lower(st.name) and (a.applies_to = 'any' or a.applies_to = st.kind)
  )
  select j.rolname, j.datname, j.name, j.val,
         case when j.allowed_name is null then 'not on the allow-list'
              when j.allowed_values is not null then format('not one of %s', array_to_string(j.allowed_values, ', '))
              else format('outside the allowed %s', case when j.min_value = j.max_value then j.min_value::text else format('%s to %s', j.min_value, j.max_value) end)
                   || case j.unit when 'ms' then ' ms' when 'B' then ' bytes' else '' end end,
         case when j.required and j.setdatabase = 0
                then format('alter role %I set %s = %L', j.rolname, j.name, j.recommended)
              when j.setrole = 0 and j.setdatabase = 0 then format('alter role all reset %s', j.name)
              when j.setrole = 0 then format('alter database %I reset %s', j.datname, j.name)
              when j.setdatabase = 0 then format('alter role %I reset %s', j.rolname, j.name)
              else format('alter role %I in database %I reset %s', j.rolname, j.datname, j.name) end
    from judged j
   where j.allowed_name is null
      or (j.allowed_values is not null and not (lower(j.val) = any (j.allowed_values)))
      or (j.allowed_values is null and (j.amount is null or j.amount < j.min_value or j.amount > j.max_value))
  union all
  select sj.rolname, null, a.setting, null, 'missing: the backstop policies/role_defaults.sql sets',
         format('alter role %I set %s = %L', sj.rolname, a.setting, a.recommended)
    from subjects sj
    join app.role_defaults_allowed() a on a.applies_to = sj.kind and a.required
   where not exists (select 1 from stored st where st.setrole = sj.oid and st.setdatabase = 0 and lower(st.name) = a.setting)
  order by 1 nulls first, 2 nulls first, 3
$$;
revoke execute on function app.role_default_problems(text, text) from public;

/*
 * For /readyz: the names of the connected login's own defaults that left the allow-list, in
 * this database, with what is wrong (never the values). Judged for session_user, the role
 * whose defaults a new connection takes (SET ROLE changes neither). SECURITY DEFINER so the
 * API role needs no grant on the judging function.
 */
create or replace function app.role_defaults_changed()
returns table (setting text, problem text)
language sql stable security definer
set search_path = pg_catalog, pg_temp
as $$
  select p.setting, p.problem
    from app.role_default_problems(session_user, null) p
   where (p.role_name = session_user or p.role_name is null)
     and (p.database_name is null or p.database_name = current_database())
$$;
revoke execute on function app.role_defaults_changed() from public;
grant execute on function app.role_defaults_changed() to app_user;

-- The API role's backstops, at the recommended values of the allow-list. They hold behind
-- PgBouncer in transaction mode, which refuses them as startup parameters and hands one server
-- connection to many clients, and they bound whatever skips the API's per-transaction timeouts
-- (server/tenantContext.ts): a statement past 5 s is cancelled, a transaction left idle for 10 s
-- is ended and its connection closed. Set only when missing or outside the allow-list (a DBA's
-- value within bounds stays), so a second run issues no ALTER.
do $$
declare
  r record;
begin
  for r in select p.setting, a.recommended
             from app.role_default_problems('app_user', null) p
             join app.role_defaults_allowed() a on a.setting = p.setting and a.applies_to = 'api' and a.required
            where p.role_name = 'app_user' and p.database_name is null
  loop
    execute format('alter role app_user set %I = %L', r.setting, r.recommended);
  end loop;
exception when insufficient_privilege then
  -- PostgreSQL 16+: CREATEROLE alone no longer alters a role the deployer did not create.
  raise warning 'app_user has no role-level timeouts: %. FIX: as a superuser, alter role app_user set statement_timeout = ''5s''; alter role app_user set idle_in_transaction_session_timeout = ''10s''', sqlerrm;
end
$$;
