# Logical replication of chat_events: a second cluster subscribes to the publication
# chat_events_pub (publish = 'insert'), has exactly the publisher's rows after a burst of
# calls, and keeps them when the publisher prunes.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use ChatAssign;

# The publisher: the worker preloaded for ops_pub, whose extension is in schema chat.
my $pub = node_with('publisher', ["chat_assign.databases = 'ops_pub'"], allows_streaming => 'logical');
$pub->safe_psql('postgres', 'CREATE DATABASE ops_pub');
$pub->safe_psql('ops_pub', 'CREATE SCHEMA chat; CREATE EXTENSION chat_assign SCHEMA chat');
$pub->safe_psql('postgres', "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'");
$pub->restart;
my $sub = node_with('subscriber');

# Events that exist before the subscription: the initial copy brings them.
$pub->safe_psql('ops_pub', q{
	SELECT chat.create_operator('pub op ' || g, 50) FROM generate_series(1, 4) g;
	SELECT chat.start_chat(gen_random_uuid(), 'before ' || g) FROM generate_series(1, 20) g});
# The event's own columns (the publication docs/operations.md shows): since and
# waiting_since serve the monitoring totals and stay home.
is( q_err($pub, 'ops_pub', q{
		CREATE PUBLICATION chat_events_pub FOR TABLE chat.chat_events
		  (id, chat_id, old_state, new_state, operator_id, team_id, reason, at)
		  WITH (publish = 'insert')}),
	'',
	"publisher: CREATE PUBLICATION chat_events_pub FOR TABLE chat.chat_events (the eight event columns) WITH (publish = 'insert')");
is( q_($pub, 'ops_pub', q{
		SELECT t.schemaname || '.' || t.tablename, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate
		FROM pg_publication p JOIN pg_publication_tables t ON t.pubname = p.pubname
		WHERE p.pubname = 'chat_events_pub'}),
	'chat.chat_events|t|f|f|f', 'publisher: the publication has chat.chat_events, inserts only');
$sub->safe_psql('postgres', 'CREATE DATABASE ops_sub');
is( q_err($sub, 'ops_sub', q{
		CREATE SCHEMA chat;
		CREATE TABLE chat.chat_events (id bigint PRIMARY KEY, chat_id uuid NOT NULL, old_state text,
		  new_state text NOT NULL, operator_id uuid, team_id uuid, reason text NOT NULL,
		  at timestamptz NOT NULL)}),
	'', 'subscriber: a plain chat.chat_events of the same shape (no extension)');
my $pub_conn = sprintf('host=%s port=%d dbname=ops_pub', $pub->host, $pub->port);
is( q_err($sub, 'ops_sub',
		"CREATE SUBSCRIPTION chat_events_sub CONNECTION '$pub_conn' PUBLICATION chat_events_pub"),
	'', 'subscriber: CREATE SUBSCRIPTION chat_events_sub ... PUBLICATION chat_events_pub');

# A burst: 4 pgbench clients for 3 s, each transaction a new chat, an assignment and the
# reply (three events), autocommit per call.
my $script = $pub->basedir . '/burst.pgbench';
append_to_file($script, <<'PGB');
SELECT id AS op FROM chat.operators ORDER BY random() LIMIT 1 \gset
SELECT chat.start_chat(gen_random_uuid(), 'burst');
SELECT coalesce(chat.assign_chat_to_operator(':op')::text, '') AS c \gset
SELECT chat.operator_send_message(nullif(':c', '')::uuid, ':op', 'hi') WHERE ':c' <> '';
PGB
my ($out, $err) = ('', '');
IPC::Run::run([ 'pgbench', '-n', '-h', $pub->host, '-p', $pub->port, '-U', 'postgres',
		'-c', '4', '-j', '4', '-T', '3', '-f', $script, 'ops_pub' ], '>', \$out, '2>', \$err);
my $rc = $? >> 8;
ok($rc == 0 && $out =~ /^number of failed transactions: 0 /m,
	'publisher: pgbench burst (4 clients, 3 s) without a failed transaction')
  or diag("exit $rc\n$out\n$err");
note($1) if $out =~ /^(number of transactions actually processed.*)$/m;

# "count md5" of the rows of chat.chat_events in id order, `at` as text in UTC.
sub event_rows_md5
{
	my ($node, $db, $where) = @_;
	local $ENV{PGOPTIONS} = '-c TimeZone=UTC';
	return q_($node, $db, "SELECT count(*) || ' ' || coalesce(md5(string_agg((id, chat_id,
		  old_state::text, new_state::text, operator_id, team_id, reason, at)::text, E'\\n'
		  ORDER BY id)), '-') FROM chat.chat_events WHERE " . ($where // 'true'));
}
my $pub_md5 = event_rows_md5($pub, 'ops_pub');
my $t0 = time();
poll(30, sub { event_rows_md5($sub, 'ops_sub') eq $pub_md5 });
my $sub_md5 = event_rows_md5($sub, 'ops_sub');
is($sub_md5, $pub_md5,
	sprintf("subscriber: exactly the publisher's %d rows (count md5 of the ordered rows) within 30 s (took %.1f s)",
		$pub_md5 =~ /^(\d+)/, time() - $t0));
my ($rows) = $pub_md5 =~ /^(\d+)/;
ok($rows > 1000, "publisher: the burst made events (rows before it: 20, now $rows)");

# Pruning on the publisher (retention 1 s, prune_chat_events() until a short batch; the
# worker prunes too) deletes nothing on the subscriber; replication goes on after it.
$pub->safe_psql('ops_pub', 'ALTER SYSTEM SET chat_assign.event_retention = 1; SELECT pg_reload_conf()');
sleep 1.5;
my $pruned = 0;
for (1 .. 50)
{
	my $n = $pub->safe_psql('ops_pub', 'SELECT chat.prune_chat_events()');
	$pruned += $n;
	last if $n < 10000;
}
is(q_($pub, 'ops_pub', "SELECT count(*) FROM chat.chat_events WHERE at < now() - interval '1 s'"),
	'0', 'publisher: pruned to no event older than 1 s (prune_chat_events() and the worker)');
note(sprintf('prune_chat_events() deleted %d, the worker the rest; publisher rows now %s',
		$pruned, q_($pub, 'ops_pub', 'SELECT count(*) FROM chat.chat_events')));
my $marker = $pub->safe_psql('ops_pub', "SELECT chat.start_chat(gen_random_uuid(), 'after the prune')");
my $marker_sql = "SELECT count(*) FROM chat.chat_events WHERE chat_id = '$marker'";
poll(30, sub { q_($sub, 'ops_sub', $marker_sql) eq '1' });
is(q_($sub, 'ops_sub', $marker_sql), '1', 'subscriber: an event made after the prune arrives');
is(event_rows_md5($sub, 'ops_sub', "chat_id <> '$marker'"), $sub_md5,
	'subscriber: still every row it had before the prune (count md5 unchanged)');
is(q_err($sub, 'ops_sub', 'DROP SUBSCRIPTION chat_events_sub'), '',
	'subscriber: DROP SUBSCRIPTION (drops its slot on the publisher)');
is(q_($pub, 'ops_pub', 'SELECT count(*) FROM pg_replication_slots'), '0',
	'publisher: no replication slot left');

$sub->stop;
$pub->stop;
done_testing();
