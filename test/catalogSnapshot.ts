// A database's schema as lines of text, to compare two databases catalog for catalog: relations
// (with RLS flags, owner, options, grants, comments), columns in order, constraints, indexes,
// policies, functions (their whole definition, owner and grants), triggers, views, sequences,
// types, schemas and default privileges, in schemas app and public. Rows are not compared, nor
// the proof streams the API creates at run time (app.context_stream_<id> sequences).
import postgres from "postgres";

const RUNTIME_SEQUENCE = "^context_stream_[0-9]+$";

export async function catalogSnapshot(url: string): Promise<string[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`
      with rel as (
        select c.oid, c.relname, c.relkind, n.nspname, n.nspname || '.' || c.relname as name
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('app', 'public') and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
           and not (c.relkind = 'S' and c.relname ~ ${RUNTIME_SEQUENCE})
      )
      select 'relation ' || r.name as line,
             concat_ws(' | ', r.relkind::text, pg_get_userbyid(c.relowner), 'rls ' || c.relrowsecurity, 'force ' || c.relforcerowsecurity,
                       'persistence ' || c.relpersistence::text, 'options ' || c.reloptions::text, 'acl ' || c.relacl::text,
                       'comment ' || obj_description(c.oid, 'pg_class')) as state
        from rel r join pg_class c on c.oid = r.oid
      union all
      select 'column ' || r.name || '.' || a.attname,
             concat_ws(' | ', 'position ' || rank() over (partition by r.oid order by a.attnum), format_type(a.atttypid, a.atttypmod),
                       case when a.attnotnull then 'not null' end, 'default ' || pg_get_expr(d.adbin, d.adrelid),
                       nullif('identity ' || a.attidentity::text, 'identity '), nullif('generated ' || a.attgenerated::text, 'generated '),
                       'collation ' || nullif(a.attcollation, 0)::regcollation::text, 'acl ' || a.attacl::text,
                       'comment ' || col_description(r.oid, a.attnum))
        from rel r join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
       where r.relkind <> 'S'
      union all
      select 'constraint ' || r.name || '.' || k.conname, concat_ws(' | ', k.contype::text, pg_get_constraintdef(k.oid), 'validated ' || k.convalidated)
        from rel r join pg_constraint k on k.conrelid = r.oid
      union all
      select 'index ' || r.name || '.' || i.relname, pg_get_indexdef(i.oid)
        from rel r join pg_index x on x.indrelid = r.oid join pg_class i on i.oid = x.indexrelid
      union all
      select 'policy ' || r.name || '.' || p.polname,
             concat_ws(' | ', p.polcmd::text, p.polpermissive, (select string_agg(coalesce(g.rolname, 'public'), ',' order by g.rolname) from unnest(p.polroles) x(o) left join pg_roles g on g.oid = x.o),
                       'using ' || pg_get_expr(p.polqual, p.polrelid), 'check ' || pg_get_expr(p.polwithcheck, p.polrelid))
        from rel r join pg_policy p on p.polrelid = r.oid
      union all
      select 'trigger ' || r.name || '.' || t.tgname, concat_ws(' | ', pg_get_triggerdef(t.oid), 'enabled ' || t.tgenabled::text)
        from rel r join pg_trigger t on t.tgrelid = r.oid and not t.tgisinternal
      union all
      select 'view ' || r.name, pg_get_viewdef(r.oid) from rel r where r.relkind in ('v', 'm')
      union all
      select 'sequence ' || r.name, concat_ws(' | ', format_type(s.seqtypid, null), s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
        from rel r join pg_sequence s on s.seqrelid = r.oid
      union all
      select 'function ' || p.oid::regprocedure::text,
             concat_ws(' | ', pg_get_userbyid(p.proowner), 'acl ' || p.proacl::text, pg_get_functiondef(p.oid), 'comment ' || obj_description(p.oid, 'pg_proc'))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname in ('app', 'public') and p.prokind in ('f', 'p', 'w')
      union all
      select 'aggregate ' || p.oid::regprocedure::text, pg_get_userbyid(p.proowner)
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('app', 'public') and p.prokind = 'a'
      union all
      select 'type ' || n.nspname || '.' || t.typname,
             concat_ws(' | ', t.typtype::text, pg_get_userbyid(t.typowner), 'acl ' || t.typacl::text,
                       (select string_agg(e.enumlabel, ',' order by e.enumsortorder) from pg_enum e where e.enumtypid = t.oid),
                       case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
                       (select string_agg(pg_get_constraintdef(k.oid), ' and ' order by k.conname) from pg_constraint k where k.contypid = t.oid))
        from pg_type t join pg_namespace n on n.oid = t.typnamespace
       where n.nspname in ('app', 'public') and t.typtype in ('e', 'd', 'r', 'm')
      union all
      select 'schema ' || n.nspname, concat_ws(' | ', pg_get_userbyid(n.nspowner), 'acl ' || n.nspacl::text, 'comment ' || obj_description(n.oid, 'pg_namespace'))
        from pg_namespace n where n.nspname in ('app', 'public')
      union all
      select 'default privileges ' || pg_get_userbyid(d.defaclrole) || ' ' || coalesce(d.defaclnamespace::regnamespace::text, '*') || ' ' || d.defaclobjtype::text,
             d.defaclacl::text
        from pg_default_acl d
      union all
      select 'extension ' || e.extname, e.extversion from pg_extension e`;
    return rows.map((r) => `${r.line}: ${r.state}`).sort();
  } finally {
    await sql.end();
  }
}

/** The lines only one of two snapshots has, marked `-` (only in `a`) and `+` (only in `b`). */
export function catalogDifferences(a: string[], b: string[]): string[] {
  const inB = new Set(b);
  const inA = new Set(a);
  return [...a.filter((l) => !inB.has(l)).map((l) => `- ${l}`), ...b.filter((l) => !inA.has(l)).map((l) => `+ ${l}`)];
}
