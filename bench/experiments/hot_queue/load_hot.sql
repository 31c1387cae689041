INSERT INTO operators (id, name, max_concurrent_chats) SELECT md5('op-'||k)::uuid, 'op '||k, 1 FROM generate_series(1,100) k;
INSERT INTO chats (id, real_user_id, waiting_since, state_changed_at, created_at, last_message_at)
  SELECT md5('chat-'||i)::uuid, md5('user-'||i)::uuid, now() - (:n - i) * interval '1 ms', now() - (:n - i) * interval '1 ms', now(), now() FROM generate_series(1, :n) i;
INSERT INTO chat_queue SELECT id, '00000000-0000-0000-0000-000000000000', priority, waiting_since, NULL FROM chats;
INSERT INTO messages (chat_id, sender_type, content) SELECT id, 'real_user', 'hello' FROM chats;
VACUUM ANALYZE;
