-- What the server would write to its log of the API role's statements
-- (psql -v ON_ERROR_STOP=1 -f verify/statement_logging.sql, as the owner role). Read-only.
-- Context proofs travel as bind parameters of the API's statements: never in pg_stat_activity
-- or pg_stat_statements, but in the server log wherever it logs parameters. Each setting is
-- judged at the value a new connection of the API role in this database gets: its stored
-- default for this database, else for every database, else this database's default, else
-- ALTER ROLE ALL's, else the server's (postgresql.conf, ALTER SYSTEM, command line).
-- Raises with one line per way a proof can reach the log, naming the setting and a FIX:
--   * log_statement = 'all' (proofs travel in a SELECT: 'mod' and 'ddl' do not log them, so pass),
--     log_min_duration_statement >= 0, log_min_duration_sample >= 0 with
--     log_statement_sample_rate > 0, log_transaction_sample_rate > 0: each only while
--     log_parameter_max_length is not 0 (0 logs the statements without their parameters);
--   * log_parameter_max_length_on_error not 0 (a failed statement is logged with its parameters);
--   * debug_print_plan, debug_print_parse, debug_print_rewritten on (custom plans carry the
--     parameters as constants);
--   * auto_explain loaded with auto_explain.log_min_duration >= 0 (its plans show the constants).
-- The FIX that keeps a server's slow-statement logging for everyone else is a default on the API
-- role that the allow-list of role defaults accepts (policies/role_defaults.sql), e.g.
-- `alter role app_user set log_parameter_max_length = 0` as a superuser.
-- Prints "statement_logging: ok" when none applies.
-- Optional: -v app_role=<name> (default app_user).
\ir app_roles.psql

do $verify$
declare
  app_role text := current_setting('verify.app_role');
  app_oid oid := (select r.oid from pg_catalog.pg_roles r where r.rolname = app_role);
  db_oid oid := (select d.oid from pg_catalog.pg_database d where d.datname = current_database());
  fails text[] := array[]::text[];
  notes text[] := array[]::text[];
  v record;
  eff jsonb := '{}'::jsonb;     -- setting -> {"value": ..., "from": where it comes from, "reset": the command that removes it}
  params_logged boolean;
  loaded boolean;
  fix_params text;
  libraries text;
  setting text;
  note text;
begin
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  if app_oid is null then
    raise exception E'statement_logging: 1 failure(s)\nFAIL role %: does not exist. FIX: deploy/apply-policies.sh (policies/roles.sql creates it)', app_role;
  end if;

  -- The effective value of each setting for a new connection of the API role, and its source.
  for v in
    with names(name) as (values ('log_statement'), ('log_min_duration_statement'), ('log_min_duration_sample'),
                                ('log_statement_sample_rate'), ('log_transaction_sample_rate'), ('log_parameter_max_length'),
                                ('log_parameter_max_length_on_error'), ('debug_print_plan'), ('debug_print_parse'),
                                ('debug_print_rewritten'), ('auto_explain.log_min_duration'), ('session_preload_libraries'),
                                ('local_preload_libraries')),
    stored as (
      select lower(split_part(c, '=', 1)) as name, substr(c, strpos(c, '=') + 1) as value,
             case when s.setrole = app_oid and s.setdatabase = db_oid then 1 when s.setrole = app_oid then 2 when s.setdatabase = db_oid then 3 else 4 end as rank,
             case when s.setrole = app_oid and s.setdatabase = db_oid then format('alter role %I in database %I reset %s', app_role, current_database(), split_part(c, '=', 1))
                  when s.setrole = app_oid then format('alter role %I reset %s', app_role, split_part(c, '=', 1))
                  when s.setdatabase = db_oid then format('alter database %I reset %s', current_database(), split_part(c, '=', 1))
                  else format('alter role all reset %s', split_part(c, '=', 1)) end as reset
        from pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c
       where s.setrole in (app_oid, 0) and s.setdatabase in (db_oid, 0)
    )
    select n.name,
           coalesce(st.value, srv.value) as value,
           case when st.rank = 1 then format('the default of %s in database %s', app_role, current_database())
                when st.rank = 2 then format('the default of %s', app_role)
                when st.rank = 3 then format('the default of database %s', current_database())
                when st.rank = 4 then 'the default of every role (ALTER ROLE ALL)'
                else 'the server''s configuration' end as source,
           st.reset, case when st.value is null then srv.note end as note
      from names n
      left join lateral (select x.value, x.reset, x.rank from stored x where x.name = n.name order by x.rank limit 1) st on true
      left join lateral (
        -- The server's value as this session sees it, unless this session's own value came from
        -- the owner's defaults or the client: then the configuration file's, or the built-in one.
        select case when ps.source in ('default', 'dynamic default', 'environment variable', 'configuration file', 'command line', 'override')
                    then ps.setting else ps.boot_val end as value,
               case when ps.source not in ('default', 'dynamic default', 'environment variable', 'configuration file', 'command line', 'override')
                    then format('%s: this session''s value comes from %s, so the built-in value %s was judged; check postgresql.conf', ps.name, ps.source, ps.boot_val) end as note
          from pg_catalog.pg_settings ps where ps.name = n.name) srv on true
  loop
    eff := eff || jsonb_build_object(v.name, jsonb_build_object('value', v.value, 'from', v.source, 'reset', v.reset));
    if v.note is not null and v.name not like 'auto\_explain.%' then notes := notes || v.note; end if;
  end loop;

  -- Where the fix lies: a stored default is reset; a server setting is kept for everyone else
  -- and switched off for the API role with a default the allow-list accepts.
  params_logged := coalesce(app.setting_in_unit(eff->'log_parameter_max_length'->>'value', 'B'), -1) <> 0;
  fix_params := format('as a superuser, alter role %I set log_parameter_max_length = 0 (the statements stay logged, without parameters)', app_role);

  if params_logged and lower(eff->'log_statement'->>'value') = 'all' then
    fails := fails || format('setting log_statement: is ''all'' for %s (%s) and log_parameter_max_length is %s, so every statement is logged with its parameters, context proofs included. FIX: %s',
      app_role, eff->'log_statement'->>'from', eff->'log_parameter_max_length'->>'value', coalesce(eff->'log_statement'->>'reset', fix_params));
  end if;
  if params_logged and coalesce(app.setting_in_unit(eff->'log_min_duration_statement'->>'value', 'ms'), -1) >= 0 then
    fails := fails || format('setting log_min_duration_statement: is %s for %s (%s) and log_parameter_max_length is %s, so statements slower than that are logged with their parameters, context proofs included. FIX: %s',
      eff->'log_min_duration_statement'->>'value', app_role, eff->'log_min_duration_statement'->>'from', eff->'log_parameter_max_length'->>'value',
      coalesce(eff->'log_min_duration_statement'->>'reset', fix_params));
  end if;
  if params_logged and coalesce(app.setting_in_unit(eff->'log_min_duration_sample'->>'value', 'ms'), -1) >= 0
     and coalesce(app.setting_in_unit(eff->'log_statement_sample_rate'->>'value', 'real'), 1) > 0 then
    fails := fails || format('setting log_min_duration_sample: is %s with log_statement_sample_rate %s for %s (%s) and log_parameter_max_length is %s, so sampled statements are logged with their parameters. FIX: %s',
      eff->'log_min_duration_sample'->>'value', eff->'log_statement_sample_rate'->>'value', app_role, eff->'log_min_duration_sample'->>'from',
      eff->'log_parameter_max_length'->>'value', coalesce(eff->'log_min_duration_sample'->>'reset', fix_params));
  end if;
  if params_logged and coalesce(app.setting_in_unit(eff->'log_transaction_sample_rate'->>'value', 'real'), 0) > 0 then
    fails := fails || format('setting log_transaction_sample_rate: is %s for %s (%s) and log_parameter_max_length is %s, so every statement of a sampled transaction is logged with its parameters. FIX: %s',
      eff->'log_transaction_sample_rate'->>'value', app_role, eff->'log_transaction_sample_rate'->>'from', eff->'log_parameter_max_length'->>'value',
      coalesce(eff->'log_transaction_sample_rate'->>'reset', fix_params));
  end if;
  if coalesce(app.setting_in_unit(eff->'log_parameter_max_length_on_error'->>'value', 'B'), -1) <> 0 then
    fails := fails || format('setting log_parameter_max_length_on_error: is %s for %s (%s), so a failed statement is logged with its parameters, a refused proof included. FIX: %s',
      eff->'log_parameter_max_length_on_error'->>'value', app_role, eff->'log_parameter_max_length_on_error'->>'from',
      coalesce(eff->'log_parameter_max_length_on_error'->>'reset', format('as a superuser, alter role %I set log_parameter_max_length_on_error = 0', app_role)));
  end if;
  foreach setting in array array['debug_print_plan', 'debug_print_parse', 'debug_print_rewritten'] loop
    -- text::boolean reads on/off, true/false, yes/no, 1/0 as PostgreSQL does; anything else counts as on.
    begin
      loaded := (eff->setting->>'value')::boolean;
    exception when invalid_text_representation then
      loaded := true;
    end;
    if loaded then
      fails := fails || format('setting %s: is on for %s (%s), so every statement''s tree is written to the server log, with a custom plan''s parameters as constants (context proofs included). FIX: %s',
        setting, app_role, eff->setting->>'from', coalesce(eff->setting->>'reset', format('as a superuser, set it off in postgresql.conf (or alter system reset %s), then select pg_reload_conf()', setting)));
    end if;
  end loop;

  -- auto_explain: loaded in every backend (shared_preload_libraries or a server-wide
  -- session_preload_libraries: its settings then exist in this session too), or for the API role
  -- through a stored default naming it.
  libraries := concat_ws(',', eff->'session_preload_libraries'->>'value', eff->'local_preload_libraries'->>'value');
  loaded := exists (select 1 from pg_catalog.pg_settings ps where ps.name = 'auto_explain.log_min_duration')
            or libraries ~* '(^|[,/ "])auto_explain([," ]|$)';
  if loaded and coalesce(app.setting_in_unit(eff->'auto_explain.log_min_duration'->>'value', 'ms'), -1) >= 0 then
    fails := fails || format('setting auto_explain.log_min_duration: is %s for %s (%s), so auto_explain writes the plans of its statements to the server log, with a custom plan''s parameters as constants. FIX: %s',
      eff->'auto_explain.log_min_duration'->>'value', app_role, eff->'auto_explain.log_min_duration'->>'from',
      coalesce(eff->'auto_explain.log_min_duration'->>'reset', format('as a superuser, alter role %I set auto_explain.log_min_duration = -1 (or remove auto_explain from shared_preload_libraries)', app_role)));
  end if;

  foreach note in array notes loop
    raise notice 'note: %', note;
  end loop;
  if cardinality(fails) > 0 then
    raise exception E'statement_logging: % failure(s)\n%', cardinality(fails), array_to_string(array(select 'FAIL ' || f from unnest(fails) f), E'\n');
  end if;
  raise notice 'statement_logging: ok (no setting logs the parameters of %''s statements: log_statement %, log_min_duration_statement %, log_parameter_max_length %, log_parameter_max_length_on_error %, debug_print_* off, auto_explain %)',
    app_role, eff->'log_statement'->>'value', eff->'log_min_duration_statement'->>'value', eff->'log_parameter_max_length'->>'value',
    eff->'log_parameter_max_length_on_error'->>'value', case when loaded then 'loaded, log_min_duration -1' else 'not loaded' end;
end
$verify$;
