INSERT INTO chat_queue SELECT id, '00000000-0000-0000-0000-000000000000', priority, now(), last_operator_id FROM chats WHERE chat_state <> 'waiting_assignment';
UPDATE chats SET chat_state='waiting_assignment', assigned_operator_id=NULL, waiting_since=now() WHERE chat_state <> 'waiting_assignment';
UPDATE chat_assignments SET released_at=now(), release_reason='x' WHERE released_at IS NULL;
UPDATE operators SET held = 0;
