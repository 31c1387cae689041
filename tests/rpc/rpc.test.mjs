// chat_assign over RPC, called exactly as PostgREST / Supabase clients call it: every
// function with a JSON body of named arguments, as the role the JWT names, the operator
// identified by the JWT's "sub" claim (ALTER ROLE authenticator SET
// chat_assign.operator_id_claim = 'sub'). Checks the JSON each client receives and the
// SQLSTATE of every kind of error. scripts/rpc.sh sets up the database (the documented grants).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Postgrest } from './postgrest.mjs';

const api = new Postgrest({
  host: process.env.PGHOST,
  port: Number(process.env.PGPORT),
  database: process.env.PGDATABASE,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const UNKNOWN = '00000000-0000-0000-0000-00000000dead';
let userSeq = 0;
const newUser = () => `00000000-0000-4000-8000-${String(++userSeq).padStart(12, '0')}`;

// The three clients: the app's backend (for real users), an operator's desk (its JWT's sub
// is the operator's id), an admin console; and a request without a JWT (anon).
const app = (fn, body) => api.rpc(fn, body, { claims: { role: 'chat_app' } });
const admin = (fn, body, method) => api.rpc(fn, body, { claims: { role: 'chat_admin' }, method });
const asOperator = (sub, fn, body) =>
  api.rpc(fn, body, { claims: { role: 'chat_operator', sub } });
const anon = (fn, body) => api.rpc(fn, body);
const adminSelect = (relation, filters, order) =>
  api.select(relation, filters, { claims: { role: 'chat_admin' }, order });

// Every test starts from an empty queue and no active operator, so counts are exact.
async function resetState() {
  for (const chat of await adminSelect('chats', { chat_state: 'neq.completed' })) {
    assert.equal(await admin('complete_chat', { p_chat_id: chat.id }), true);
  }
  for (const op of await adminSelect('operators', { is_active: 'eq.true' })) {
    assert.equal(
      await admin('set_operator_active', { p_operator_id: op.id, p_is_active: false }),
      true,
    );
  }
}

async function newOperator(name, capacity) {
  const body = capacity === undefined ? { p_name: name } : { p_name: name, p_max_concurrent_chats: capacity };
  const id = await admin('create_operator', body);
  assert.match(id, UUID);
  return id;
}

async function newChat(content = 'Hello') {
  const id = await app('start_chat', { p_real_user_id: newUser(), p_content: content });
  assert.match(id, UUID);
  return id;
}

// Everything a refused call could have written.
const snapshot = async () => ({
  chats: await adminSelect('chats', {}, 'id'),
  messages: await adminSelect('messages', {}, 'id'),
  assignments: await adminSelect('chat_assignments', {}, 'id'),
  activity: await adminSelect('operator_activity', {}, 'chat_id'),
  operators: await adminSelect('operators', {}, 'id'),
});

const refused = (promise, code, what = 'the call') =>
  assert.rejects(
    promise,
    (err) => {
      assert.equal(err.code, code, `${what}: expected SQLSTATE ${code}, got ${err.code}: ${err.message}`);
      return true;
    },
    `${what} succeeded; expected SQLSTATE ${code}`,
  );

before(resetState);
after(() => api.end());

test('start_chat (chat_app) returns the chat id as a JSON string', async () => {
  const chat = await newChat('My order is late');
  const [row] = await adminSelect('chats', { id: `eq.${chat}` });
  assert.equal(row.chat_state, 'waiting_assignment');
  const messages = await adminSelect('messages', { chat_id: `eq.${chat}` });
  assert.deepEqual(messages.map((m) => [m.sender_type, m.content]), [['real_user', 'My order is late']]);
});

test('create_operator (chat_admin) returns a uuid; the capacity argument is optional', async () => {
  await resetState();
  const one = await newOperator('Ann');
  const two = await newOperator('Ben', 2);
  const rows = await adminSelect('operators', { is_active: 'eq.true' }, 'name');
  assert.deepEqual(
    rows.map((r) => [r.id, r.name, r.max_concurrent_chats, r.is_active]),
    [[one, 'Ann', 1, true], [two, 'Ben', 2, true]],
  );
});

test('assign_chat_to_operator (chat_operator) returns the chat id, or JSON null when nothing waits', async () => {
  await resetState();
  const op = await newOperator('Cora');
  assert.equal(await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op }), null);
  const chat = await newChat();
  assert.equal(await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op }), chat);
});

test('touch_operator_activity returns JSON booleans', async () => {
  await resetState();
  const op = await newOperator('Dan');
  const chat = await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  assert.equal(await asOperator(op, 'touch_operator_activity', { p_operator_id: op, p_chat_id: chat }), true);
  const other = await newChat();
  assert.equal(await asOperator(op, 'touch_operator_activity', { p_operator_id: op, p_chat_id: other }), false);
});

test('operator_send_message and real_user_send_message return message ids as JSON numbers', async () => {
  await resetState();
  const op = await newOperator('Eva');
  const chat = await newChat('Where is my parcel?');
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  const reply = await asOperator(op, 'operator_send_message', {
    p_chat_id: chat, p_operator_id: op, p_content: 'It ships today',
  });
  assert.ok(Number.isInteger(reply), `reply id ${reply}`);
  const followUp = await asOperator(op, 'operator_send_message', {
    p_chat_id: chat, p_operator_id: op, p_content: 'Tracking number follows',
  });
  const answer = await app('real_user_send_message', { p_chat_id: chat, p_content: 'Thanks!' });
  assert.ok(Number.isInteger(answer) && answer > followUp && followUp > reply);
  const messages = await adminSelect('messages', { chat_id: `eq.${chat}` }, 'id');
  assert.deepEqual(
    messages.map((m) => [m.id, m.sender_type, m.operator_id, m.content]),
    [
      [messages[0].id, 'real_user', null, 'Where is my parcel?'],
      [reply, 'operator', op, 'It ships today'],
      [followUp, 'operator', op, 'Tracking number follows'],
      [answer, 'real_user', null, 'Thanks!'],
    ],
  );
});

test('release_and_reassign_chat (chat_admin) returns true, then false; the reason is optional', async () => {
  await resetState();
  const op = await newOperator('Finn', 2);
  const first = await newChat();
  const second = await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  assert.equal(await admin('release_and_reassign_chat', { p_chat_id: first }), true);
  assert.equal(await admin('release_and_reassign_chat', { p_chat_id: first }), false);
  assert.equal(await admin('release_and_reassign_chat', { p_chat_id: second, p_reason: 'shift change' }), true);
  const reasons = async (chat) =>
    (await adminSelect('chat_assignments', { chat_id: `eq.${chat}` }, 'id')).map((a) => a.release_reason);
  assert.deepEqual(await reasons(first), ['manual_unassign']);
  assert.deepEqual(await reasons(second), ['shift change']);
});

test('release_idle_assignments (chat_admin) returns an array of {chat_id, operator_id, idle_seconds}', async () => {
  await resetState();
  const op = await newOperator('Gus');
  const chat = await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  assert.deepEqual(await admin('release_idle_assignments', {}), []);
  await sleep(100);
  const released = await admin('release_idle_assignments', { p_idle_after: '0.05 seconds' });
  assert.equal(released.length, 1);
  assert.deepEqual(Object.keys(released[0]).sort(), ['chat_id', 'idle_seconds', 'operator_id']);
  assert.equal(released[0].chat_id, chat);
  assert.equal(released[0].operator_id, op);
  assert.equal(typeof released[0].idle_seconds, 'number');
  assert.ok(released[0].idle_seconds >= 0.05);
});

test('complete_chat (chat_app and chat_admin) returns true, then false', async () => {
  const chat = await newChat();
  assert.equal(await app('complete_chat', { p_chat_id: chat }), true);
  assert.equal(await admin('complete_chat', { p_chat_id: chat }), false);
  const [row] = await adminSelect('chats', { id: `eq.${chat}` });
  assert.deepEqual([row.chat_state, row.is_active], ['completed', false]);
});

test('set_operator_active (chat_admin) returns whether it changed and releases the chats', async () => {
  await resetState();
  const op = await newOperator('Hana');
  const chat = await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  assert.equal(await admin('set_operator_active', { p_operator_id: op, p_is_active: false }), true);
  assert.equal(await admin('set_operator_active', { p_operator_id: op, p_is_active: false }), false);
  const [row] = await adminSelect('chats', { id: `eq.${chat}` });
  assert.deepEqual([row.chat_state, row.assigned_operator_id], ['waiting_assignment', null]);
  assert.equal(await admin('set_operator_active', { p_operator_id: op, p_is_active: true }), true);
});

test('get_assignment_queue_status (chat_admin) returns one object with numbers and nulls', async () => {
  await resetState();
  const keys = [
    'active_operators', 'assigned_count', 'available_operators', 'avg_waiting_seconds',
    'busy_operators', 'oldest_waiting_seconds', 'waiting_count', 'waiting_reply_count',
  ];
  const [empty, ...more] = await admin('get_assignment_queue_status', {});
  assert.equal(more.length, 0);
  assert.deepEqual(Object.keys(empty).sort(), keys);
  assert.deepEqual(empty, {
    waiting_count: 0, assigned_count: 0, waiting_reply_count: 0,
    oldest_waiting_seconds: null, avg_waiting_seconds: null,
    active_operators: 0, busy_operators: 0, available_operators: 0,
  });
  const op = await newOperator('Ivo');
  await newChat();
  await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  const [status] = await admin('get_assignment_queue_status', {}, 'GET');
  assert.equal(typeof status.oldest_waiting_seconds, 'number');
  assert.equal(typeof status.avg_waiting_seconds, 'number');
  assert.deepEqual(
    { ...status, oldest_waiting_seconds: 0, avg_waiting_seconds: 0 },
    {
      waiting_count: 1, assigned_count: 1, waiting_reply_count: 0,
      oldest_waiting_seconds: 0, avg_waiting_seconds: 0,
      active_operators: 1, busy_operators: 1, available_operators: 0,
    },
  );
});

test('detect_stuck_chats (chat_admin) returns an array of objects, oldest first', async () => {
  await resetState();
  const op = await newOperator('Jon');
  const held = await newChat();
  const waiting = await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  assert.deepEqual(await admin('detect_stuck_chats', {}), []);
  await sleep(100);
  const stuck = await admin('detect_stuck_chats', { p_hours: 0.00001 }, 'GET');
  assert.deepEqual(
    stuck.map((s) => Object.keys(s).sort()),
    Array(2).fill([
      'assigned_operator_id', 'chat_id', 'chat_state', 'hours_in_state', 'last_operator_id',
      'operator_name', 'real_user_id', 'state_changed_at',
    ]),
  );
  // The waiting chat has been in its state since it started; the held one since it was assigned.
  assert.deepEqual(
    stuck.map((s) => [s.chat_id, s.chat_state, s.assigned_operator_id, s.last_operator_id, s.operator_name]),
    [
      [waiting, 'waiting_assignment', null, null, null],
      [held, 'assigned', op, op, 'Jon'],
    ],
  );
  for (const s of stuck) {
    assert.match(s.real_user_id, UUID);
    assert.equal(typeof s.hours_in_state, 'number');
    assert.ok(!Number.isNaN(Date.parse(s.state_changed_at)), s.state_changed_at);
  }
});

test('the monitoring views read as arrays of objects (chat_admin)', async () => {
  await resetState();
  const op = await newOperator('Kim');
  await newChat();
  await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op });
  const summary = await adminSelect('chat_state_summary');
  assert.deepEqual(
    summary.map((s) => Object.keys(s).sort()),
    Array(4).fill(['avg_seconds_in_state', 'chat_count', 'chat_state', 'oldest_state_changed_at']),
  );
  // Earlier tests completed chats: how many is theirs to say.
  assert.ok(Number.isInteger(summary[3].chat_count));
  assert.deepEqual(
    summary.slice(0, 3).map((s) => [s.chat_state, s.chat_count]),
    [['waiting_assignment', 0], ['assigned', 1], ['waiting_real_user_reply', 0]],
  );
  assert.equal(summary[0].oldest_state_changed_at, null);
  assert.ok(!Number.isNaN(Date.parse(summary[1].oldest_state_changed_at)));
  assert.equal(typeof summary[1].avg_seconds_in_state, 'number');
  const [stats] = await adminSelect('operator_assignment_stats', { operator_id: `eq.${op}` });
  assert.deepEqual(stats, {
    operator_id: op, operator_name: 'Kim', is_active: true, max_concurrent_chats: 1,
    total_assignments: 1, released_assignments: 0, active_assignments: 1, avg_handling_seconds: null,
  });
});

test('errors arrive with their SQLSTATE: 22004, 22023, P0002, 55000, 22P02', async () => {
  await resetState();
  const op = await newOperator('Lea');
  const chat = await newChat();
  await refused(app('start_chat', { p_real_user_id: null, p_content: 'Hi' }), '22004');
  await refused(app('start_chat', { p_real_user_id: newUser(), p_content: null }), '22004');
  await refused(app('real_user_send_message', { p_chat_id: chat, p_content: null }), '22004');
  await refused(admin('set_operator_active', { p_operator_id: op, p_is_active: null }), '22004');
  await refused(app('start_chat', { p_real_user_id: newUser(), p_content: '   ' }), '22023');
  await refused(app('real_user_send_message', { p_chat_id: chat, p_content: '' }), '22023');
  await refused(admin('create_operator', { p_name: 'Max', p_max_concurrent_chats: 0 }), '22023');
  await refused(admin('create_operator', { p_name: ' ' }), '22023');
  await refused(admin('release_and_reassign_chat', { p_chat_id: chat, p_reason: ' ' }), '22023');
  await refused(admin('detect_stuck_chats', { p_hours: 0 }), '22023');
  await refused(admin('release_idle_assignments', { p_idle_after: '-1 minute' }), '22023');
  await refused(app('real_user_send_message', { p_chat_id: UNKNOWN, p_content: 'Hi' }), 'P0002');
  await refused(app('complete_chat', { p_chat_id: UNKNOWN }), 'P0002');
  await refused(admin('release_and_reassign_chat', { p_chat_id: UNKNOWN }), 'P0002');
  await refused(admin('set_operator_active', { p_operator_id: UNKNOWN, p_is_active: true }), 'P0002');
  await refused(asOperator(UNKNOWN, 'assign_chat_to_operator', { p_operator_id: UNKNOWN }), 'P0002');
  await refused(
    asOperator(op, 'operator_send_message', { p_chat_id: UNKNOWN, p_operator_id: op, p_content: 'Hi' }),
    'P0002',
  );
  await refused(app('start_chat', { p_real_user_id: 'not-a-uuid', p_content: 'Hi' }), '22P02');
  // 55000: not this operator's chat; at capacity; inactive. Nothing is written.
  const before = await snapshot();
  await refused(
    asOperator(op, 'operator_send_message', { p_chat_id: chat, p_operator_id: op, p_content: 'Hi' }),
    '55000',
  );
  assert.deepEqual(await snapshot(), before);
  assert.equal(await asOperator(op, 'assign_chat_to_operator', { p_operator_id: op }), chat);
  await newChat();
  const full = await snapshot();
  await refused(asOperator(op, 'assign_chat_to_operator', { p_operator_id: op }), '55000');
  assert.deepEqual(await snapshot(), full);
  assert.equal(await admin('set_operator_active', { p_operator_id: op, p_is_active: false }), true);
  await refused(asOperator(op, 'assign_chat_to_operator', { p_operator_id: op }), '55000');
});

test('a body field that names no parameter, or a missing required one, finds no function (42883)', async () => {
  const op = await newOperator('Mia');
  await refused(asOperator(op, 'assign_chat_to_operator', { p_operatorid: op }), '42883');
  await refused(asOperator(op, 'assign_chat_to_operator', { operator_id: op }), '42883');
  await refused(asOperator(op, 'assign_chat_to_operator', {}), '42883');
  await refused(app('start_chat', { p_real_user_id: newUser() }), '42883');
  await refused(app('start_chat', { p_real_user_id: newUser(), p_content: 'Hi', p_urgency: 1 }), '42883');
});

test('each role gets 42501 for every function it was not granted', async () => {
  const op = await newOperator('Nia');
  const chat = await newChat();
  const calls = {
    start_chat: { p_real_user_id: newUser(), p_content: 'Hi' },
    real_user_send_message: { p_chat_id: chat, p_content: 'Hi' },
    complete_chat: { p_chat_id: chat },
    assign_chat_to_operator: { p_operator_id: op },
    operator_send_message: { p_chat_id: chat, p_operator_id: op, p_content: 'Hi' },
    touch_operator_activity: { p_operator_id: op, p_chat_id: chat },
    release_and_reassign_chat: { p_chat_id: chat },
    create_operator: { p_name: 'Eve' },
    set_operator_active: { p_operator_id: op, p_is_active: false },
    release_idle_assignments: {},
    get_assignment_queue_status: {},
    detect_stuck_chats: {},
    read_chat_events: { p_after_id: 0 },
    prune_chat_events: {},
    worker_status: {},
  };
  const granted = {
    anon: [],
    chat_app: ['start_chat', 'real_user_send_message', 'complete_chat'],
    chat_operator: ['assign_chat_to_operator', 'operator_send_message', 'touch_operator_activity'],
    chat_admin: [
      'release_and_reassign_chat', 'complete_chat', 'create_operator', 'set_operator_active',
      'release_idle_assignments', 'get_assignment_queue_status', 'detect_stuck_chats',
      'read_chat_events', 'prune_chat_events', 'worker_status',
    ],
  };
  const before = await snapshot();
  for (const [role, fns] of Object.entries(granted)) {
    for (const [fn, body] of Object.entries(calls)) {
      if (fns.includes(fn)) continue;
      await refused(api.rpc(fn, body, { claims: { role, sub: op } }), '42501', `${fn} as ${role}`);
    }
  }
  assert.deepEqual(await snapshot(), before);
  // Tables: chat_app and anon read nothing; chat_operator reads chats and messages only.
  for (const relation of ['chats', 'messages', 'operators', 'chat_state_summary']) {
    await refused(api.select(relation, {}, { claims: { role: 'chat_app' } }), '42501');
    await refused(api.select(relation), '42501');
  }
  for (const relation of ['operators', 'chat_assignments', 'operator_activity', 'chat_state_summary', 'operator_assignment_stats']) {
    await refused(api.select(relation, {}, { claims: { role: 'chat_operator', sub: op } }), '42501');
  }
  const own = { claims: { role: 'chat_operator', sub: op } };
  assert.equal((await api.select('chats', { id: `eq.${chat}` }, own)).length, 1);
  assert.equal((await api.select('messages', { chat_id: `eq.${chat}` }, own)).length, 1);
  // A JWT naming a role the authenticator may not switch to.
  await refused(api.rpc('get_assignment_queue_status', {}, { claims: { role: 'postgres' } }), '42501');
  await refused(anon('get_assignment_queue_status', {}), '42501');
});

test('the operator claim: only the operator named by sub may assign, reply and heartbeat as itself', async () => {
  await resetState();
  const olga = await newOperator('Olga');
  const pete = await newOperator('Pete');
  const chat = await newChat();
  assert.equal(await asOperator(olga, 'assign_chat_to_operator', { p_operator_id: olga }), chat);
  await newChat('Another one');
  const before = await snapshot();
  // Pete's JWT, Olga's id.
  await refused(asOperator(pete, 'assign_chat_to_operator', { p_operator_id: olga }), '42501');
  await refused(asOperator(pete, 'touch_operator_activity', { p_operator_id: olga, p_chat_id: chat }), '42501');
  await refused(
    asOperator(pete, 'operator_send_message', { p_chat_id: chat, p_operator_id: olga, p_content: 'Not Olga' }),
    '42501',
  );
  // No sub, a sub that is not a string, an empty sub.
  for (const claims of [{ role: 'chat_operator' }, { role: 'chat_operator', sub: 42 }, { role: 'chat_operator', sub: '' }]) {
    await refused(api.rpc('assign_chat_to_operator', { p_operator_id: pete }, { claims }), '42501');
    await refused(api.rpc('touch_operator_activity', { p_operator_id: olga, p_chat_id: chat }, { claims }), '42501');
  }
  assert.deepEqual(await snapshot(), before);
  // A NULL operator is reported as such whatever the claims.
  await refused(asOperator(pete, 'assign_chat_to_operator', { p_operator_id: null }), '22004');
  await refused(api.rpc('assign_chat_to_operator', { p_operator_id: null }, { claims: { role: 'chat_operator' } }), '22004');
  // Olga's own JWT (the uuid in any case).
  assert.equal(
    await asOperator(olga.toUpperCase(), 'touch_operator_activity', { p_operator_id: olga, p_chat_id: chat }),
    true,
  );
  assert.ok(Number.isInteger(await asOperator(olga, 'operator_send_message', {
    p_chat_id: chat, p_operator_id: olga, p_content: 'Olga here',
  })));
  assert.match(await asOperator(pete, 'assign_chat_to_operator', { p_operator_id: pete }), UUID);
});

test('a full conversation over RPC', async () => {
  await resetState();
  const alice = await newOperator('Alice');
  const user = newUser();
  const chat = await app('start_chat', { p_real_user_id: user, p_content: 'Hi, my order is late' });
  assert.match(chat, UUID);
  assert.equal(await asOperator(alice, 'assign_chat_to_operator', { p_operator_id: alice }), chat);
  assert.equal(await asOperator(alice, 'touch_operator_activity', { p_operator_id: alice, p_chat_id: chat }), true);
  const desk = { claims: { role: 'chat_operator', sub: alice } };
  const [seen] = await api.select('chats', { id: `eq.${chat}` }, desk);
  assert.deepEqual([seen.real_user_id, seen.chat_state, seen.assigned_operator_id], [user, 'assigned', alice]);
  const reply = await asOperator(alice, 'operator_send_message', {
    p_chat_id: chat, p_operator_id: alice, p_content: 'Sorry! Checking now.',
  });
  assert.equal(await asOperator(alice, 'assign_chat_to_operator', { p_operator_id: alice }), null);
  const answer = await app('real_user_send_message', { p_chat_id: chat, p_content: 'Thanks, any news?' });
  assert.ok(answer > reply);
  const messages = await api.select('messages', { chat_id: `eq.${chat}` }, { ...desk, order: 'id' });
  assert.deepEqual(
    messages.map((m) => [m.sender_type, m.content]),
    [['real_user', 'Hi, my order is late'], ['operator', 'Sorry! Checking now.'], ['real_user', 'Thanks, any news?']],
  );
  const [status] = await admin('get_assignment_queue_status', {});
  assert.deepEqual(
    [status.waiting_count, status.assigned_count, status.waiting_reply_count, status.active_operators,
      status.busy_operators, status.available_operators],
    [1, 0, 0, 1, 0, 1],
  );
  const history = await adminSelect('chat_assignments', { chat_id: `eq.${chat}` }, 'id');
  assert.deepEqual(history.map((a) => [a.operator_id, a.release_reason]), [[alice, 'operator_replied']]);
  assert.equal(await asOperator(alice, 'assign_chat_to_operator', { p_operator_id: alice }), chat);
  assert.equal(await app('complete_chat', { p_chat_id: chat }), true);
  const [done] = await adminSelect('chats', { id: `eq.${chat}` });
  assert.deepEqual([done.chat_state, done.is_active, done.assigned_operator_id], ['completed', false, null]);
});

test('retries with p_idempotency_key return the first result (JSON key like any parameter)', async () => {
  const user = newUser();
  const body = { p_real_user_id: user, p_content: 'Hi', p_idempotency_key: 'retry-start' };
  const chat = await app('start_chat', body);
  assert.equal(await app('start_chat', body), chat);
  const message = { p_chat_id: chat, p_content: 'Still there?', p_idempotency_key: 'retry-msg' };
  const first = await app('real_user_send_message', message);
  assert.equal(await app('real_user_send_message', message), first);
  const rows = await adminSelect('messages', { chat_id: `eq.${chat}` }, 'id');
  assert.equal(rows.length, 2);
});

test('teams, presence, transfers, queue positions and metrics over RPC, with JSON keys', async () => {
  await resetState();
  const team = await admin('create_team', { p_name: 'Billing', p_routing: 'manual' });
  assert.match(team, UUID);
  const olga = await newOperator('Olga');
  const pete = await newOperator('Pete');
  assert.equal(await admin('add_team_member', { p_team_id: team, p_operator_id: olga }), true);
  const first = await app('start_chat', { p_real_user_id: newUser(), p_content: 'Bill?', p_team_id: team, p_priority: 2 });
  const second = await app('start_chat', { p_real_user_id: newUser(), p_content: 'Bill too', p_team_id: team });
  // The user's view of the queue: one object, numbers and a null estimate (nothing served yet).
  assert.deepEqual(await app('get_queue_position', { p_chat_id: second }), [
    { queue_position: 2, waiting_ahead: 1, estimated_wait_seconds: null },
  ]);
  // Presence: an operator sets its own, and only its own (the claim).
  assert.equal(await asOperator(olga, 'set_operator_status', { p_operator_id: olga, p_status: 'away' }), 'online');
  await refused(asOperator(pete, 'set_operator_status', { p_operator_id: olga, p_status: 'offline' }), '42501');
  await refused(app('set_operator_status', { p_operator_id: olga, p_status: 'online' }), '42501');
  // An away operator who asks is back online and served; Pete, in no team, gets nothing.
  assert.equal(await asOperator(olga, 'assign_chat_to_operator', { p_operator_id: olga }), first);
  assert.equal(await asOperator(pete, 'assign_chat_to_operator', { p_operator_id: pete }), null);
  // Transfers are the admins': to a non-member 55000, to the team (back to its queue) true.
  await refused(admin('transfer_chat', { p_chat_id: first, p_to_operator_id: pete }), '55000');
  await refused(asOperator(olga, 'transfer_chat', { p_chat_id: first, p_to_team_id: team }), '42501');
  assert.equal(await admin('transfer_chat', { p_chat_id: first, p_to_team_id: team, p_reason: 'wrong desk' }), true);
  assert.equal(await admin('set_chat_priority', { p_chat_id: second, p_priority: 5 }), true);
  // Operators of earlier tests are inactive: online counts only these two.
  const rows = await adminSelect('team_queue_status');
  assert.deepEqual(rows.map((r) => [r.team_name, r.waiting, r.online]), [[null, 0, 2], ['Billing', 2, 1]]);
  const metrics = await admin('get_service_metrics', { p_team_id: team });
  assert.equal(metrics.length, 1);
  assert.equal(metrics[0].scope, 'team');
  assert.equal(metrics[0].chats_started, 2);
  assert.equal(metrics[0].transfers, 1);
  await refused(admin('get_service_metrics', { p_team_id: newUser() }), 'P0002');
});
