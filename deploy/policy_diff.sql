-- Prints what changed between the policy_before and policy_after snapshots (deploy/policy_state.sql).
\pset footer off
\pset tuples_only on
\pset format unaligned
select coalesce(string_agg(line, E'\n' order by line), 'no changes') from (
  select case when a.object is null then 'removed  ' || b.object || ': ' || b.state
              when b.object is null then 'added    ' || a.object || ': ' || a.state
              else 'changed  ' || a.object || E':\n           before: ' || b.state || E'\n           after:  ' || a.state end as line
    from policy_before b full join policy_after a using (object)
   where b.state is distinct from a.state
) d;
