-- No oracle: every function the application roles can execute, judged by behaviour
-- (psql -v ON_ERROR_STOP=1 -f verify/verify_functions.sql, as the owner role, a member of
-- app_user and app_bi). Any function an application role can execute is an oracle unless it
-- needs a proof or a context: password hashes were readable through a login lookup.
-- 1. Lists every function app_user, app_bi and each BI login (a member of app_bi) can execute,
--    in every schema but pg_catalog and information_schema: by its own grant, through PUBLIC, or
--    as a role it may SET ROLE to (extension members are counted per extension). A BI login that
--    may execute a function app_bi may not fails: it would go unprobed.
-- 2. Inside one transaction that is rolled back it creates two throwaway tenants: A (an owner
--    with an email, a customer) and B (an owner). Then, as app_user and as app_bi, it calls every
--    function of schema app the role may execute (found in the catalog, so a new function is
--    probed without editing this file), with arguments built from its argument types: uuid ->
--    A's tenant, user and customer ids; text -> A's owner's email, A's slug, A's id as text;
--    text[] -> A's slug, A's id; booleans both ways; numbers 1; json '{}'; anything else NULL:
--      * without a context: nothing may come back (no row, NULL, false, 0, '', or an error);
--      * in tenant B's context (opened by app.open_operator_context as B's owner): the answer
--        for A's ids must equal the answer for ids that exist nowhere (same rows once the
--        arguments are masked, or the same SQLSTATE): another tenant's row is indistinguishable
--        from one that does not exist. Functions without arguments are skipped here (their
--        answer cannot depend on another tenant's ids; verify_rls.sql probes those returning
--        tenant rows).
--    Every call runs in its own subtransaction, rolled back: nothing it writes stays.
-- Functions that return non-tenant data by design are on the allow-list at the top of the DO
-- block, each with its reason and the part of the probe it is exempt from. Raises with one line
-- per leak, naming the function, the role, the arguments and a FIX; prints "verify_functions: ok"
-- otherwise.
-- Optional: -v app_role=<name> (default app_user), -v bi_role=<name> (default app_bi).
\ir app_roles.psql
begin;

do $verify$
declare
  app_role text := current_setting('verify.app_role');
  bi_role text := coalesce(nullif(current_setting('verify.bi_role', true), ''), 'app_bi');
  a uuid := gen_random_uuid();
  b uuid := gen_random_uuid();
  ua uuid;
  ub uuid;
  ca uuid;
  email_a text := 'verify-fn-' || left(a::text, 8) || '@a.invalid';
  slug_a text := 'verify-fn-a-' || left(a::text, 8);
  fails text[] := array[]::text[];
  notes text[] := array[]::text[];
  subjects oid[];
  f record;
  r record;
  c record;
  out_a text;
  out_n text;
  out_n2 text;
  probed int := 0;
  calls int := 0;
begin
  perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

  -- The allow-list: functions an application role may call that answer without a context by
  -- design. scope: 'no context' (exempt from the call without a context), 'another tenant'
  -- (exempt from the comparison in another tenant's context) or 'both'.
  create temp table verify_functions_allowed (signature text primary key, scope text not null, reason text not null) on commit drop;
  insert into verify_functions_allowed values
    ('app.context_key_ids()', 'no context',
     'the ids of the installed context keys (a hash of each, not the key), the same for every tenant: /readyz checks the API''s own is among them'),
    ('app.applied_migrations()', 'no context',
     'the names of the applied migration files, the same for every tenant: /readyz compares them with the release''s'),
    ('app.deployed_policy_versions()', 'no context',
     'the hashes of the policy versions deploys left in force, the same for every tenant: /readyz compares them with the release''s'),
    ('app.global_table_names()', 'no context',
     'the names of the global tables, part of the schema: /ops/env-sanity tells tenant tables apart with it'),
    ('app.table_read_permissions()', 'no context',
     'which permission a read of each tenant table needs, the same for every shop (runbooks/rbac-matrix.md): the access explainer opens a member''s context for it'),
    ('app.table_write_permissions()', 'no context',
     'which permission a write to each tenant table needs, the same for every shop (runbooks/rbac-matrix.md): the access explainer opens a member''s context for it'),
    ('app.bind_session()', 'no context',
     'a fresh random id for the calling connection''s read proofs (policies/proofs.sql): it names no tenant and no user, and no other connection can use it'),
    ('app.role_defaults_changed()', 'no context',
     'the names (never the values) of the connected login''s own role defaults that left the allow-list, for /readyz');

  -- One call, as p_who, in its own subtransaction (rolled back: nothing it writes stays), without a
  -- context or in p_tenant's context as p_user. Its answer: 'error <SQLSTATE>', 'nothing' (no
  -- row, or rows holding only NULL, false, 0, '' and empty arrays), or the rows as JSON with each
  -- argument string masked as <argN>, so answers for different arguments compare.
  execute $helper$
    create or replace function pg_temp.verify_functions_answer(p_fn regprocedure, p_who text, p_args text, p_tokens text[], p_tenant uuid, p_user uuid)
    returns text
    language plpgsql
    set search_path = pg_catalog, pg_temp
    as $body$
    declare
      j jsonb;
      answer text;
      i int;
    begin
      begin
        if p_tenant is null then
          perform app.close_context();
        else
          perform app.open_operator_context(p_tenant, 'owner', p_user);
        end if;
        execute format('set local role %I', p_who);
        execute format('select coalesce(jsonb_agg(to_jsonb(r)), ''[]'') from (select * from %s(%s)) r', p_fn::oid::regproc, p_args) into j;
        if jsonb_path_exists(j, 'strict $.** ? ((@.type() == "string" && @ != "") || (@.type() == "number" && @ != 0) || @ == true)') then
          answer := j::text;
          for i in 1 .. coalesce(cardinality(p_tokens), 0) loop
            if p_tokens[i] <> '' then
              answer := replace(answer, p_tokens[i], format('<arg%s>', i));
            end if;
          end loop;
        else
          answer := 'nothing';
        end if;
        raise sqlstate 'VF001';
      exception
        when sqlstate 'VF001' then null;
        when others then answer := 'error ' || sqlstate;
      end;
      return answer;
    end
    $body$
  $helper$;

  -- 1. What each application role can execute.
  select array_agg(g.oid order by g.rolname) into subjects from pg_catalog.pg_roles g
   where g.rolname in (app_role, bi_role)
      or (g.oid in (select m.member from pg_catalog.pg_auth_members m join pg_catalog.pg_roles x on x.oid = m.roleid where x.rolname = bi_role)
          and g.rolname <> current_user and g.oid is distinct from (select n.nspowner from pg_catalog.pg_namespace n where n.nspname = 'app'));
  for r in
    with callable as (
      select p.oid, s.rolname as subject, has_function_privilege(s.oid, p.oid, 'EXECUTE') as own,
             (select string_agg(g.rolname, ', ' order by g.rolname) from pg_catalog.pg_roles g
               where g.oid <> s.oid and pg_catalog.pg_has_role(s.oid, g.oid, 'MEMBER') and has_function_privilege(g.oid, p.oid, 'EXECUTE')) as through,
             (select e.extname from pg_catalog.pg_depend d join pg_catalog.pg_extension e on e.oid = d.refobjid
               where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e') as extension
        from pg_catalog.pg_proc p
        join pg_catalog.pg_namespace n on n.oid = p.pronamespace
        cross join pg_catalog.pg_roles s
       where s.oid = any (subjects) and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_temp\_%'
    )
    select cl.subject, cl.extension, count(*) as n,
           string_agg(format('%s%s', cl.oid::regprocedure, case when not cl.own then ' (as ' || cl.through || ')' else '' end), ', ' order by cl.oid::regprocedure::text) as fns
      from callable cl where cl.own or cl.through is not null
     group by cl.subject, cl.extension order by cl.subject, cl.extension nulls first
  loop
    notes := notes || case when r.extension is null then format('executable by %s: %s', r.subject, r.fns)
                           else format('executable by %s: %s function(s) of extension %s', r.subject, r.n, r.extension) end;
  end loop;
  for r in select g.rolname, p.oid::regprocedure as fn
             from pg_catalog.pg_roles g, pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
            where g.oid = any (subjects) and g.rolname not in (app_role, bi_role)
              and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\_temp\_%'
              and has_function_privilege(g.oid, p.oid, 'EXECUTE') and not has_function_privilege(bi_role, p.oid, 'EXECUTE')
            order by 1, 2::text
  loop
    fails := fails || format('FAIL function %s: BI login %s may execute it and %s may not, so it goes unprobed. FIX: revoke execute on function %s from %I',
      r.fn, r.rolname, bi_role, r.fn, r.rolname);
  end loop;

  -- 2. The probe tenants: A is the one whose data must not come back.
  insert into app.tenants (id, slug, name) values
    (a, slug_a, 'verify_functions tenant A'),
    (b, 'verify-fn-b-' || left(b::text, 8), 'verify_functions tenant B');
  insert into app.users (email) values (email_a) returning id into ua;
  insert into app.users (email) values ('verify-fn-' || left(b::text, 8) || '@b.invalid') returning id into ub;
  insert into app.memberships (tenant_id, user_id, role) values (a, ua, 'owner'), (b, ub, 'owner');
  insert into app.customers (tenant_id, name) values (a, 'verify_functions customer of A') returning id into ca;

  -- Argument candidates per type: a literal naming A's data, a literal of the same shape naming
  -- nothing, the string each carries (masked before answers are compared), and a label.
  create temp table verify_functions_values (typ regtype, k int, a_lit text, n_lit text, a_token text, n_token text, label text) on commit drop;
  insert into verify_functions_values
  select x.typ::regtype, (row_number() over (partition by x.typ order by x.ord))::int, x.a_lit, x.n_lit, x.a_token, x.n_token, x.label
    from (
      select 'uuid' as typ, x.ord, quote_literal(x.v) || '::uuid' as a_lit, quote_literal(x.n) || '::uuid' as n_lit, x.v::text as a_token, x.n::text as n_token, x.label
        from (values (1, a, gen_random_uuid(), 'A''s tenant id'), (2, ua, gen_random_uuid(), 'A''s owner''s user id'),
                     (3, ca, gen_random_uuid(), 'A''s customer id')) x(ord, v, n, label)
      union all
      select 'text', x.ord, quote_literal(x.v) || '::text', quote_literal(x.n) || '::text', x.v, x.n, x.label
        from (values (1, email_a, 'verify-fn-nobody-' || left(gen_random_uuid()::text, 8) || '@none.invalid', 'A''s owner''s email'),
                     (2, slug_a, 'verify-fn-none-' || left(gen_random_uuid()::text, 8), 'A''s slug'),
                     (3, a::text, gen_random_uuid()::text, 'A''s id as text')) x(ord, v, n, label)
      union all
      select 'text[]', x.ord, quote_literal(array[x.v]::text) || '::text[]', quote_literal(array[x.n]::text) || '::text[]', x.v, x.n, x.label
        from (values (1, slug_a, 'verify-fn-none-' || left(gen_random_uuid()::text, 8), '{A''s slug}'),
                     (2, a::text, gen_random_uuid()::text, '{A''s id}')) x(ord, v, n, label)
      union all
      select 'uuid[]', 1, quote_literal(array[a]::text) || '::uuid[]', quote_literal(array[x.n]::text) || '::uuid[]', a::text, x.n::text, '{A''s tenant id}'
        from (select gen_random_uuid() as n) x
      union all
      select 'boolean', x.ord, x.v, x.v, null, null, x.v from (values (1, 'true'), (2, 'false')) x(ord, v)
      union all
      select t, 1, '1::' || t, '1::' || t, null, null, '1' from unnest(array['smallint', 'integer', 'bigint', 'numeric', 'real', 'double precision']) t
      union all
      select t, 1, '''{}''::' || t, '''{}''::' || t, null, null, '{}' from unnest(array['json', 'jsonb']) t
    ) x;

  -- Every function of schema app each probing role may execute (functions, not procedures or
  -- aggregates; a trigger function raises when called, which counts as nothing).
  for f in
    select p.oid::regprocedure as fn, g.rolname::text as who, p.pronargs, p.provariadic <> 0 as variadic,
           coalesce((select x.scope from verify_functions_allowed x where to_regprocedure(x.signature) = p.oid), '') as exempt
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
      join pg_catalog.pg_roles g on g.rolname in (app_role, bi_role)
     where n.nspname = 'app' and p.prokind = 'f' and has_function_privilege(g.oid, p.oid, 'EXECUTE')
     order by 2, 1::text
  loop
    if not pg_has_role(current_user, f.who, 'MEMBER') then
      fails := fails || format('FAIL role %s: %s cannot SET ROLE %s, so the functions it may execute cannot be probed. FIX: grant %I to %I (deploy/apply-policies.sh does, policies/roles.sql)', f.who, current_user, f.who, f.who, current_user);
      continue;
    end if;
    probed := probed + 1;
    -- The argument combinations: all of them when there are at most 27, else the diagonal
    -- (combination k takes each argument's k-th candidate, cycling). A type without candidates
    -- gets NULL.
    for c in
      with args as (
        select u.i::int as i, u.t::regtype as t, greatest(1, (select count(*) from verify_functions_values v where v.typ = u.t))::int as n
          from unnest((select p.proargtypes::regtype[] from pg_catalog.pg_proc p where p.oid = f.fn)) with ordinality u(t, i)
      ),
      total as (select coalesce(round(exp(sum(ln(n))))::int, 1) as combos, coalesce(max(n), 1) as widest from args),
      picks as (
        select k.combo, ar.i, ar.t,
               1 + case when (select combos from total) <= 27
                        then (k.combo / coalesce((select round(exp(sum(ln(a2.n))))::int from args a2 where a2.i > ar.i), 1)) % ar.n
                        else k.combo % ar.n end as pick
          from args ar cross join generate_series(0, (select case when combos <= 27 then combos else widest end from total) - 1) k(combo)
      )
      select pk.combo,
             string_agg(case when f.variadic and pk.i = f.pronargs then 'variadic ' else '' end || coalesce(v.a_lit, format('null::%s', pk.t)), ', ' order by pk.i) as args_a,
             string_agg(case when f.variadic and pk.i = f.pronargs then 'variadic ' else '' end || coalesce(v.n_lit, format('null::%s', pk.t)), ', ' order by pk.i) as args_n,
             string_agg(coalesce(v.label, 'NULL'), ', ' order by pk.i) as labels,
             array_agg(coalesce(v.a_token, '') order by pk.i) as tokens_a,
             array_agg(coalesce(v.n_token, '') order by pk.i) as tokens_n
        from picks pk left join verify_functions_values v on v.typ = pk.t and v.k = pk.pick
       group by pk.combo
      union all
      select 0, '', '', '', array[]::text[], array[]::text[] where f.pronargs = 0
      order by 1
    loop
      -- Without a context: nothing may come back.
      if f.exempt not in ('no context', 'both') then
        out_a := pg_temp.verify_functions_answer(f.fn, f.who, c.args_a, c.tokens_a, null, null);
        calls := calls + 1;
        if out_a not like 'error %' and out_a <> 'nothing' then
          fails := fails || format('LEAK function %s: %s got an answer without a context, called with (%s): %s. FIX: let it answer only inside a context opened by proof (NULL, no rows or an error otherwise), or revoke execute on function %s from %I',
            f.fn, f.who, c.labels, left(out_a, 200), f.fn, f.who);
        end if;
      end if;

      -- In tenant B's context: A's ids answer as ids that exist nowhere.
      if f.pronargs > 0 and f.exempt not in ('another tenant', 'both') then
        out_a := pg_temp.verify_functions_answer(f.fn, f.who, c.args_a, c.tokens_a, b, ub);
        out_n := pg_temp.verify_functions_answer(f.fn, f.who, c.args_n, c.tokens_n, b, ub);
        calls := calls + 2;
        if out_a is distinct from out_n then
          -- An answer that differs between two calls with the same arguments (a new id, a clock)
          -- is compared by its kind only: nothing, an error's SQLSTATE, or an answer.
          out_n2 := pg_temp.verify_functions_answer(f.fn, f.who, c.args_n, c.tokens_n, b, ub);
          calls := calls + 1;
          if out_n2 is distinct from out_n then
            out_a := case when out_a like 'error %' or out_a = 'nothing' then out_a else 'an answer' end;
            out_n := case when out_n like 'error %' or out_n = 'nothing' then out_n else 'an answer' end;
          end if;
        end if;
        if out_a is distinct from out_n then
          fails := fails || format('LEAK function %s: in another tenant''s context %s tells tenant A''s data from data that does not exist, called with (%s): %s, against %s for ids that exist nowhere. FIX: answer for another tenant''s ids exactly as for unknown ones (key the lookup on app.current_tenant_id() or the caller''s own user), or revoke execute on function %s from %I',
            f.fn, f.who, c.labels, left(out_a, 200), left(out_n, 200), f.fn, f.who);
        end if;
      end if;
    end loop;
  end loop;

  for r in select x.signature from verify_functions_allowed x where to_regprocedure(x.signature) is null loop
    notes := notes || format('the allow-list names %s, which does not exist', r.signature);
  end loop;
  -- The list of what each role can execute, and anything worth a look, as one notice.
  raise notice '%', array_to_string(array(select 'note: ' || x from unnest(notes) x), E'\n');
  if cardinality(fails) > 0 then
    raise exception E'verify_functions: % leak(s)\n%', cardinality(fails), array_to_string(array(select distinct x from unnest(fails) x order by 1), E'\n');
  end if;
  raise notice 'verify_functions: ok (% functions of schema app probed as % and % in % calls, without a context and in another tenant''s; % on the allow-list; two throwaway tenants rolled back)',
    probed, app_role, bi_role, calls, (select count(*) from verify_functions_allowed x where to_regprocedure(x.signature) is not null);
end
$verify$;

rollback;
