// Calls the database the way PostgREST 12 (the API server behind Supabase) does: a pool of
// connections as the login role `authenticator`, and per request one transaction that
// switches to the role named by the JWT's "role" claim (anon without one), publishes the
// claims and the request as settings, runs one statement that returns the JSON text the
// client receives, and commits (rolls back on error). Errors reach the caller as pg errors
// whose `code` is the SQLSTATE.
import pg from 'pg';

const quoteIdent = (name) => `"${name.replaceAll('"', '""')}"`;

// Input parameters of every function in the schema: PostgREST's schema cache, from which it
// types the JSON body's fields.
const SCHEMA_CACHE_SQL = `
SELECT p.proname AS name, p.proretset AS returns_set,
       coalesce(json_object_agg(a.name, format_type(a.type, NULL)) FILTER (WHERE a.name IS NOT NULL),
                '{}') AS args
FROM pg_catalog.pg_proc p
LEFT JOIN LATERAL unnest(p.proargnames[1:p.pronargs], p.proargtypes::oid[]) AS a (name, type) ON true
WHERE p.pronamespace = $1::regnamespace
GROUP BY p.oid, p.proname, p.proretset`;

// What PostgREST runs first in every request transaction (set_config('role', ..., true) is
// SET LOCAL ROLE).
const REQUEST_SQL = `
SELECT set_config('search_path', $1, true), set_config('role', $2, true),
       set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true),
       set_config('request.path', $5, true), set_config('request.headers', $6, true),
       set_config('request.cookies', $7, true)`;

export class Postgrest {
  #pool;
  #schema;
  #anonRole;
  #functions = null;

  constructor({ schema = 'public', anonRole = 'anon', ...connection }) {
    this.#pool = new pg.Pool({ user: 'authenticator', max: 4, ...connection });
    this.#schema = schema;
    this.#anonRole = anonRole;
  }

  // POST /rpc/<fn> with a JSON object body (GET /rpc/<fn>?... with method 'GET': the same
  // call in a read-only transaction). The statement names each body field as an argument,
  // typed from the schema cache: a field that names no parameter makes the call match no
  // function, which PostgREST reports from its cache (PGRST202) and the database as 42883.
  async rpc(fn, body = {}, { claims = {}, method = 'POST' } = {}) {
    const target = (await this.#schemaCache()).get(fn);
    const fields = Object.keys(body).map((name) => ({
      name: quoteIdent(name),
      type: target?.args[name] ?? 'text',
    }));
    const call = `${quoteIdent(this.#schema)}.${quoteIdent(fn)}(${fields
      .map((f) => `${f.name} := pgrst_body.${f.name}`)
      .join(', ')})`;
    const from =
      fields.length === 0
        ? ''
        : `(SELECT $1::json AS json_data) pgrst_payload, ` +
          `LATERAL (SELECT ${fields.map((f) => f.name).join(', ')} ` +
          `FROM json_to_record(pgrst_payload.json_data) AS _(${fields
            .map((f) => `${f.name} ${f.type}`)
            .join(', ')}) LIMIT 1) pgrst_body, `;
    const sql = target?.returnsSet
      ? `WITH pgrst_source AS (SELECT pgrst_call.* FROM ${from}LATERAL ${call} pgrst_call) ` +
        `SELECT coalesce(json_agg(_postgrest_t), '[]')::text AS body ` +
        `FROM (SELECT * FROM pgrst_source) _postgrest_t`
      : `WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar FROM ${from}` +
        `LATERAL (SELECT ${call} pgrst_scalar) pgrst_call) ` +
        `SELECT coalesce((json_agg(_postgrest_t.pgrst_scalar)->0)::text, 'null') AS body ` +
        `FROM (SELECT "pgrst_scalar" FROM pgrst_source) _postgrest_t`;
    const params = fields.length === 0 ? [] : [JSON.stringify(body)];
    return this.#request(method, `/rpc/${fn}`, claims, sql, params);
  }

  // GET /<table or view>?<column>=eq.<value>&order=<column>: filters are { column: 'eq.v' }
  // or { column: 'neq.v' }.
  async select(relation, filters = {}, { claims = {}, order } = {}) {
    const rel = `${quoteIdent(this.#schema)}.${quoteIdent(relation)}`;
    const params = [];
    const conditions = Object.entries(filters).map(([column, filter]) => {
      const [op, ...value] = filter.split('.');
      params.push(value.join('.'));
      const operator = { eq: '=', neq: '<>' }[op];
      if (!operator) throw new Error(`unsupported filter ${filter}`);
      return `${rel}.${quoteIdent(column)} ${operator} $${params.length}`;
    });
    const sql =
      `SELECT coalesce(json_agg(_postgrest_t), '[]')::text AS body ` +
      `FROM (SELECT ${rel}.* FROM ${rel}` +
      (conditions.length ? ` WHERE ${conditions.join(' AND ')}` : '') +
      (order ? ` ORDER BY ${rel}.${quoteIdent(order)}` : '') +
      `) _postgrest_t`;
    return this.#request('GET', `/${relation}`, claims, sql, params);
  }

  async end() {
    await this.#pool.end();
  }

  async #request(method, path, claims, sql, params) {
    const role = claims.role ?? this.#anonRole;
    const client = await this.#pool.connect();
    try {
      await client.query(
        `BEGIN ISOLATION LEVEL READ COMMITTED ${method === 'GET' ? 'READ ONLY' : 'READ WRITE'}`,
      );
      try {
        await client.query(REQUEST_SQL, [
          quoteIdent(this.#schema),
          role,
          JSON.stringify({ ...claims, role }),
          method,
          path,
          JSON.stringify({ 'content-type': 'application/json' }),
          '{}',
        ]);
        const { rows } = await client.query(sql, params);
        await client.query('COMMIT');
        return JSON.parse(rows[0].body);
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    } finally {
      client.release();
    }
  }

  async #schemaCache() {
    if (!this.#functions) {
      const { rows } = await this.#pool.query(SCHEMA_CACHE_SQL, [this.#schema]);
      this.#functions = new Map(
        rows.map((r) => [r.name, { returnsSet: r.returns_set, args: r.args }]),
      );
    }
    return this.#functions;
  }
}
