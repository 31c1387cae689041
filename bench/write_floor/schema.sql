-- (e) the write floor: chat_assign's own tables, indexes and CHECKs (CREATE EXTENSION
-- chat_assign has just run in this database), written by bench/pgbench/cycle_e.sql with
-- three plain SQL statements per cycle instead of the functions.
--
-- The functions' writes do not fire the statement triggers that count an app's own writes
-- into the monitoring totals (sql/state_totals.sql: they set chat_assign.api_write, which a
-- client cannot set): so that (e) costs what the functions' rows cost and nothing more,
-- those four triggers go, and so do the two that add a chat given by a direct write to its
-- operator's held_chat_ids (sql/references.sql), which the functions do in the statement.
-- What is left is the rows a cycle of the contract writes (three chat updates, two
-- messages, an assignment and its release, the operator's last_assigned_at and
-- held_chat_ids, three change events) through chat_assign's indexes and CHECKs.
DROP TRIGGER chats_note_holders_insert ON chats;
DROP TRIGGER chats_note_holders_update ON chats;
DROP TRIGGER chats_state_totals_insert ON chats;
DROP TRIGGER chats_state_totals_update ON chats;
DROP TRIGGER chats_state_totals_delete ON chats;
DROP TRIGGER chat_events_insert_skip_foreign ON chat_events;
