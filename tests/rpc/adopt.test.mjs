// An existing app moved onto chat_assign (docs/adopting.md): scripts/rpc.sh builds a
// database of bench/plpgsql's shape (its tables and PL/pgSQL functions in public, with the
// grants its roles had there, and the messes its old code left), installs the extension in
// schema chat_assign, imports with repair and switches the app's calls. The app's clients
// keep calling the names they called, in public, over RPC as PostgREST does; the calls
// reach the extension, with its operator claim.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Postgrest } from './postgrest.mjs';

const api = new Postgrest({
  host: process.env.PGHOST,
  port: Number(process.env.PGPORT),
  database: process.env.PGDATABASE_APP,
});
after(() => api.end());

const ALICE = '0a000000-0000-0000-0000-000000000001';
const BOB = '0a000000-0000-0000-0000-000000000002';
const CAROL = '0a000000-0000-0000-0000-000000000003';
const chat = (n) => `c1000000-0000-0000-0000-00000000000${n}`;
const admin = (fn, body) => api.rpc(fn, body, { claims: { role: 'chat_admin' } });
const asOperator = (sub, fn, body) => api.rpc(fn, body, { claims: { role: 'chat_operator', sub } });

test('the app calls the names it always called, in public, and the extension answers', async () => {
  // Imported with repair: Alice kept one of her two chats (capacity 1), so three wait.
  const [status] = await admin('get_assignment_queue_status', {});
  assert.deepEqual([status.waiting_count, status.assigned_count, status.waiting_reply_count], [3, 3, 2]);
  const stuck = await admin('detect_stuck_chats', { p_hours: 1 });
  assert.deepEqual(stuck.map((row) => [row.chat_id, row.operator_name]), [[chat(7), 'Carol']]);
  const summary = await api.select('chat_state_summary', {}, { claims: { role: 'chat_admin' } });
  assert.equal(summary.length, 4);
  assert.equal(summary.find((row) => row.chat_state === 'waiting_assignment').chat_count, 3);
});

test("an operator's call goes through the app's name to the extension, claim checked", async () => {
  // Carol (capacity 2, holds chat 7) takes the chat that waits longest.
  assert.equal(await asOperator(CAROL, 'assign_chat_to_operator', { p_operator_id: CAROL }), chat(1));
  // Bob's JWT cannot act for Carol: the extension's operator claim applies behind the app's name.
  await assert.rejects(asOperator(BOB, 'assign_chat_to_operator', { p_operator_id: CAROL }),
    (e) => e.code === '42501');
  // The app's admin unassigns with the app's own call; the chat is back in the queue.
  assert.equal(await admin('release_and_reassign_chat', { p_chat_id: chat(1), p_reason: 'manual_unassign' }), true);
  const rows = await api.select('chats', { id: `eq.${chat(1)}` }, { claims: { role: 'chat_operator', sub: ALICE } });
  assert.equal(rows[0].chat_state, 'waiting_assignment');
});

test("the app's names give no right the extension's grants do not", async () => {
  // Everyone may call the app's release_and_reassign_chat (as before the switch); the
  // extension's needs chat_admin.
  await assert.rejects(
    api.rpc('release_and_reassign_chat', { p_chat_id: chat(1) }, { claims: { role: 'chat_operator', sub: ALICE } }),
    (e) => e.code === '42501',
  );
});
