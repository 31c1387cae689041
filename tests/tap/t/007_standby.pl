# A physical streaming replica (a base backup) answers the monitoring as the primary does
# once replay caught up, and refuses what writes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ChatAssign;

my $db = 'ops_standby';
my $primary = node_with('primary', [], allows_streaming => 1);
$primary->safe_psql('postgres', "CREATE DATABASE $db");
$primary->safe_psql($db, 'CREATE EXTENSION chat_assign');
$primary->safe_psql($db, sql_file('fill.sql'));
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
is(q_($standby, $db, 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# More changes on the primary after the base backup: they reach the standby by streaming.
my $op = $primary->safe_psql($db, "SELECT create_operator('standby op', 3)");
my $chats = $primary->safe_psql($db,
	"SELECT count(start_chat(gen_random_uuid(), 'after the backup ' || g)) FROM generate_series(1, 5) g");
$primary->safe_psql($db, "SELECT assign_chat_to_operator('$op')");
my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
$primary->wait_for_catchup($standby, 'replay', $lsn);
is(q_($standby, 'postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn"), 't',
	"replay caught up with the primary ($chats chats started after the backup)");

# The same answers: everything but the ages, which depend on now().
for my $q (
	'SELECT waiting_count, assigned_count, waiting_reply_count, active_operators, busy_operators, available_operators FROM get_assignment_queue_status()',
	'SELECT chat_state, chat_count, oldest_state_changed_at FROM chat_state_summary',
	'SELECT chat_id, chat_state, state_changed_at, assigned_operator_id, last_operator_id, operator_name FROM detect_stuck_chats(0.000001)',
	'SELECT * FROM operator_assignment_stats ORDER BY operator_id',
	'SELECT * FROM operator_activity ORDER BY chat_id')
{
	my $on_primary = q_($primary, $db, $q);
	isnt($on_primary, '', 'the primary has rows for: ' . substr($q, 0, 60) . '...');
	is(q_($standby, $db, $q), $on_primary, 'standby = primary: ' . substr($q, 0, 60) . '...');
}
invariants_hold($standby, $db, 'on the standby');

# What writes is refused there, with PostgreSQL's code for it; read_chat_events says why.
is(sqlstate($standby, $db, "SELECT start_chat(gen_random_uuid(), 'on the standby')"), '25006',
	'a call that writes is refused on the standby: 25006 (read_only_sql_transaction)');
is(sqlstate($standby, $db, 'SELECT * FROM read_chat_events(0, 10)'), '0A000',
	'read_chat_events on the standby: 0A000 (it runs on the primary)');

$standby->stop;
$primary->stop;
done_testing();
