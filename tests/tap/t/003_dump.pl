# pg_dump -Fc / pg_restore and plain pg_dump / psql keep every row, the sequences, the
# grants and a working extension.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use ChatAssign;

my $node = node_with('dump');
my $src = 'ops_dump_src';
$node->safe_psql('postgres', "CREATE DATABASE $src");
$node->safe_psql($src, 'CREATE EXTENSION chat_assign');
$node->safe_psql($src, sql_file('fill.sql'));
# A role with grants on extension objects: they must survive too.
$node->safe_psql($src, q{
	CREATE ROLE ops_grantee NOLOGIN;
	GRANT EXECUTE ON FUNCTION assign_chat_to_operator(uuid) TO ops_grantee;
	GRANT SELECT ON chats TO ops_grantee});
is( q_($node, $src, q{
		SELECT format('operators %s (%s inactive), chats %s, messages %s, assignments %s (%s open; %s), heartbeats %s',
		  (SELECT count(*) FROM operators), (SELECT count(*) FROM operators WHERE NOT is_active),
		  (SELECT string_agg(n::text, '/' ORDER BY s) FROM (SELECT chat_state, count(*) FROM chats GROUP BY 1) AS x (s, n)),
		  (SELECT count(*) FROM messages), (SELECT count(*) FROM chat_assignments),
		  (SELECT count(*) FROM chat_assignments WHERE released_at IS NULL),
		  (SELECT string_agg(DISTINCT release_reason, ', ') FROM chat_assignments),
		  (SELECT count(*) FROM operator_activity))}),
	'operators 4 (1 inactive), chats 9/3/1/1, messages 21, assignments 11 (3 open; completed, escalated to billing, idle_timeout, manual_unassign, operator_inactive, operator_replied, real_user_message), heartbeats 3',
	'source: data in every table, chats in all four states, assignments open and released for every reason');
my $queue_sql = q{
	SELECT waiting_count, assigned_count, waiting_reply_count, active_operators,
	       busy_operators, available_operators FROM get_assignment_queue_status()};
my $src_md5 = q_($node, $src, sql_file('table_md5.sql'));
my $src_catalog = q_($node, $src, sql_file('catalog.sql'));
my $src_queue = q_($node, $src, $queue_sql);
my $src_exec = executable_by($node, $src, 'ops_grantee');
is($src_exec, 'assign_chat_to_operator(uuid)',
	'source: ops_grantee may execute exactly the granted function (no EXECUTE for PUBLIC)');
invariants_hold($node, $src, 'source');

my $dump = $node->basedir . '/src.dump';
my $plain = $node->basedir . '/src.sql';
my @conn = ('-h', $node->host, '-p', $node->port, '-U', 'postgres');
command_ok([ 'pg_dump', @conn, '-Fc', '-f', $dump, $src ], 'pg_dump -Fc');
$node->safe_psql('postgres', 'CREATE DATABASE ops_dump_custom');
$node->safe_psql('postgres', 'CREATE DATABASE ops_dump_plain');
command_ok([ 'pg_restore', @conn, '--exit-on-error', '-d', 'ops_dump_custom', $dump ],
	'pg_restore of the pg_dump -Fc archive into a new database: no error');
command_ok([ 'pg_dump', @conn, '-Fp', '-f', $plain, $src ], 'plain pg_dump');
command_ok([ 'psql', @conn, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', $plain, '-d', 'ops_dump_plain' ],
	'plain pg_dump restored with psql into a new database: no error');

for my $db (qw(ops_dump_custom ops_dump_plain))
{
	my $label = 'restored ' . ($db =~ s/^ops_dump_//r);
	is(q_($node, $db, sql_file('table_md5.sql')), $src_md5,
		"$label: every row of every table equal (md5 per table, and the monitoring totals)");
	is(q_($node, $db, sql_file('catalog.sql')), $src_catalog,
		"$label: extension objects equal, grants included (tests/tap/sql/catalog.sql)");
	is( executable_by($node, $db, 'ops_grantee') . ' '
		  . q_($node, $db, "SELECT has_table_privilege('ops_grantee', 'chats', 'SELECT')"),
		"$src_exec t",
		"$label: ops_grantee keeps EXECUTE on assign_chat_to_operator(uuid) and SELECT on chats, nothing more");
	is(q_($node, $db, $queue_sql), $src_queue, "$label: get_assignment_queue_status() counts as in the source");
	invariants_hold($node, $db, $label);
	works($node, $db, $label);
}

$node->stop;
done_testing();
