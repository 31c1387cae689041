# Queue heads (src/store/heads.rs): where the worker runs, a claim starts at its queue's
# head instead of the queue index's first entry. Under a snapshot older than the claims
# (a REPEATABLE READ report), the entries claimed chats left at the head of
# idx_chats_waiting_assignment cannot be removed, and a claim without a head walks them all.
# With the head it walks almost none, and still takes chats in queue order: a chat put
# back before the head (a release keeps its place, a higher priority, a chat started by a
# transaction that began long ago) is the next one taken.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use ChatAssign;

# 'heads' has a worker that ticks every 10 ms; 'nohead' has none (the claims there scan
# from the queue's start, as without preload).
my $node = node_with('heads',
	[ "chat_assign.databases = 'heads'", "chat_assign.notify_interval = '10ms'",
	  'chat_assign.idle_check_interval = 3600' ]);
for my $db ('heads', 'nohead')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION chat_assign');
}
$node->safe_psql('postgres', "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'");
$node->restart;
ok(poll(10, sub { worker_databases($node) eq 'heads' }), "the worker runs in 'heads' only");

# A transaction that begins now and starts a chat at the very end: its chat waits from
# now (its transaction's now()), before every other chat of this test.
my $late = $node->background_psql('heads');
$late->query_safe('BEGIN; SELECT now()');

my $chats = 300;
my (%op, %chat_no);
for my $db ('heads', 'nohead')
{
	# One transaction per chat: each waits from its own now(), in this order.
	my @ids;
	push @ids, $node->safe_psql($db, "SELECT start_chat(gen_random_uuid(), 'chat $_')")
	  for 1 .. $chats;
	@{ $chat_no{$db} }{@ids} = (1 .. $chats);
	$op{$db} = [ split /\n/, $node->safe_psql($db,
		"SELECT create_operator('op ' || g) FROM generate_series(1, 3) AS g") ];
	# Statistics that see the queue, as autovacuum would have them.
	$node->safe_psql($db, 'ANALYZE');
}

# The report: a snapshot older than every claim below, held to the end.
my $report = $node->background_psql('heads');
$report->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM chats');
my $report_nohead = $node->background_psql('nohead');
$report_nohead->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM chats');

# 200 cycles by the first operator: take, answer, the user answers (the chat goes back to
# the end of the queue). Each leaves a dead entry at the head of the queue index.
my $cycles = 200;
my %order;
for my $db ('heads', 'nohead')
{
	my $o = $op{$db}[0];
	$order{$db} = $node->safe_psql($db, qq{
		DO \$\$
		DECLARE
			c uuid;
		BEGIN
			FOR i IN 1 .. $cycles LOOP
				c := assign_chat_to_operator('$o');
				PERFORM operator_send_message(c, '$o', 'Answer');
				PERFORM real_user_send_message(c, 'Thanks');
				COMMIT;
			END LOOP;
		END
		\$\$;
		SELECT string_agg(chat_no::text, ' ' ORDER BY a.id)
		FROM chat_assignments a
		JOIN (SELECT id, row_number() OVER (ORDER BY created_at, id) AS chat_no FROM chats) c
		  ON c.id = a.chat_id});
}
my $first_200 = join ' ', 1 .. $cycles;
is($order{heads}, $first_200, 'heads: the cycles took the chats in queue order');
is($order{nohead}, $first_200, 'nohead: the cycles took the chats in queue order');

# Index entries of the indexes on chats one assignment reads in DB (the counters count
# every entry a scan returns, dead ones included), read in the claim's own transaction of a
# new session: the worker's reads do not count.
sub entries_read_by_one_claim
{
	my ($db, $operator) = @_;
	return $node->safe_psql($db, qq{
		BEGIN;
		SELECT assign_chat_to_operator('$operator') IS NOT NULL AS got \\gset
		SELECT sum(pg_stat_get_xact_tuples_returned(indexrelid)) FROM pg_index
		WHERE indrelid = 'chats'::regclass;
		COMMIT;});
}

# Give the worker a few ticks to move the head past the claimed chats.
sleep 0.5;
my $without = entries_read_by_one_claim('nohead', $op{nohead}[1]);
my $with = entries_read_by_one_claim('heads', $op{heads}[1]);
cmp_ok($without, '>=', $cycles,
	"nohead: under the old snapshot one claim reads every entry left dead since ($without)");
cmp_ok($with, '<', 20,
	"heads: the claim starts at the head and reads only a few entries ($with)");
is($node->safe_psql('heads', qq{SELECT count(*) FROM chats WHERE assigned_operator_id = '$op{heads}[1]'}),
	'1', 'heads: that claim took a chat');

# Chat numbers the next claims of OPERATOR take in 'heads', after the worker's ticks.
sub next_claims
{
	my ($operator, $n) = @_;
	sleep 0.2;
	my @got;
	for (1 .. $n)
	{
		my $c = $node->safe_psql('heads', "SELECT assign_chat_to_operator('$operator')");
		push @got, $c eq '' ? 'none' : ($chat_no{heads}{$c} // 'new');
		$node->safe_psql('heads', "SELECT operator_send_message('$c', '$operator', 'Hi')")
		  if $c ne '';
	}
	return join ' ', @got;
}

# The second operator took chat 201. A release puts it back at its old place, now before
# the head (the worker moved it on to 202).
my $c201 = $node->safe_psql('heads', qq{SELECT id FROM chats WHERE assigned_operator_id = '$op{heads}[1]'});
is($chat_no{heads}{$c201}, 201, 'the claim measured above took chat 201');
sleep 0.2;
$node->safe_psql('heads', "SELECT release_and_reassign_chat('$c201')");
is(next_claims($op{heads}[2], 2), '201 202',
	'a chat released back before the head is the next one taken, then the head');

# A higher priority far down the queue comes first.
my $c250 = (grep { $chat_no{heads}{$_} == 250 } keys %{ $chat_no{heads} })[0];
$node->safe_psql('heads', "SELECT set_chat_priority('$c250', 5)");
is(next_claims($op{heads}[2], 2), '250 203',
	'a chat whose priority rises is the next one taken, then the head of priority 0');

# The transaction that began first starts its chat now: it waits from that transaction's
# start, before every chat here, and is the next one taken once it commits.
my $early = $late->query_safe('SELECT start_chat(gen_random_uuid(), \'from an early transaction\')');
is(next_claims($op{heads}[2], 1), '204',
	'while its transaction is open, its chat is not there: the head is taken');
$late->query_safe('COMMIT');
$late->quit;
is(next_claims($op{heads}[2], 2), 'new 205',
	"once it commits, the early transaction's chat is taken first, then the head");
is($node->safe_psql('heads', qq{
		SELECT c.id = '$early' FROM chats c
		JOIN chat_assignments a ON a.chat_id = c.id
		ORDER BY a.id DESC OFFSET 1 LIMIT 1}),
	't', "that chat is the early transaction's");

# avoid_same_operator (on by default) with the head: an operator released from the chat at
# the head gets the next one, searched from the head; another operator gets the released one.
my $c206 = $node->safe_psql('heads', "SELECT assign_chat_to_operator('$op{heads}[0]')");
is($chat_no{heads}{$c206}, 206, 'the first operator takes the head, chat 206');
$node->safe_psql('heads', "SELECT release_and_reassign_chat('$c206')");
is(next_claims($op{heads}[0], 1), '207',
	'released from it, that operator is given the next chat, not its own again');
is(next_claims($op{heads}[2], 1), '206', 'another operator then takes the released chat');

# A chat put in the queue by the app's own SQL (no call to record it) waits at most until
# the worker reads the queue from its start again, once a second.
$node->safe_psql('heads', qq{
	UPDATE chats SET waiting_since = '2000-01-01' WHERE id IN (
		SELECT id FROM chats WHERE chat_state = 'waiting_assignment'
		ORDER BY waiting_since DESC LIMIT 1)});
sleep 1.5;
is(next_claims($op{heads}[2], 1), '200',
	"a chat moved to the front by the app's own UPDATE is taken after the worker's next full read");

$report->query_safe('COMMIT');
$report->quit;
$report_nohead->query_safe('COMMIT');
$report_nohead->quit;
invariants_hold($node, 'heads', 'heads');
invariants_hold($node, 'nohead', 'nohead');
done_testing();
