# Retries across a crash: calls whose replies were lost (the server crashed after their
# commit) are retried with their idempotency keys; each retry returns the original result
# and nothing is stored twice.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use ChatAssign;

my $node = node_with('retry');
my $db = 'postgres';
$node->safe_psql($db, 'CREATE EXTENSION chat_assign');
my $op = $node->safe_psql($db, "SELECT create_operator('retry op')");
my $chat = $node->safe_psql($db, "SELECT start_chat(gen_random_uuid(), 'Hello?', 'start-1')");
$node->safe_psql($db, "SELECT assign_chat_to_operator('$op')");

# The calls commit; their replies are thrown away, as a client whose connection broke
# before the reply arrived never sees them. Then the server crashes (immediate stop: no
# shutdown checkpoint, the commits are replayed from the WAL).
my $msg1 = $node->safe_psql($db, "SELECT operator_send_message('$chat', '$op', 'Answer', 'reply-1')");
my $user1 = $node->safe_psql($db, "SELECT real_user_send_message('$chat', 'Thanks', 'user-1')");
my $log_from = -s $node->logfile;
$node->stop('immediate');
$node->start;
ok(log_count($node, $log_from, 'database system was interrupted')
	  + log_count($node, $log_from, 'was not properly shut down') > 0,
	'log: the restart ran crash recovery');

is(q_($node, $db, "SELECT operator_send_message('$chat', '$op', 'Answer', 'reply-1')"),
	$msg1,
	"the operator's retry returns the original message id (the chat has moved on since: without the key it would be refused)");
is(q_($node, $db, "SELECT real_user_send_message('$chat', 'Thanks', 'user-1')"),
	$user1, "the user's retry returns the original message id");
is(q_($node, $db, "SELECT start_chat(real_user_id, 'Hello?', 'start-1') FROM chats WHERE id = '$chat'"),
	$chat, 'start_chat retried with its key returns the same chat');
is( q_($node, $db, qq{
		SELECT (SELECT count(*) FROM messages WHERE idempotency_key = 'reply-1'),
		       (SELECT count(*) FROM messages WHERE idempotency_key = 'user-1'),
		       (SELECT count(*) FROM chats),
		       (SELECT count(*) FROM messages WHERE chat_id = '$chat' AND sender_type = 'operator'),
		       (SELECT count(*) FROM chat_events WHERE chat_id = '$chat')}),
	'1|1|1|1|4',
	'one message per key, one chat, and one event per change (no second reply, no second message)');
invariants_hold($node, $db, 'after the retries');

$node->stop;
done_testing();
