# pg_dump -Fc / pg_restore and plain pg_dump / psql keep every row (teams, memberships,
# presence and transfers included), the sequences, the grants and a working extension.
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
	'operators 6 (1 inactive), chats 13/6/1/1, messages 28, assignments 18 (6 open; completed, crash expert, escalated to billing, idle_timeout, manual_unassign, operator_inactive, operator_offline, operator_replied, real_user_message, removed_from_team, transfer), heartbeats 6',
	'source: data in every table, chats in all four states, assignments open and released for every reason');
is( q_($node, $src, q{
		SELECT format('presence %s; teams %s; members %s; chats in teams %s; transfers %s',
		  (SELECT string_agg(format('%s %s', status, n), ', ' ORDER BY status)
		   FROM (SELECT status, count(*) FROM operators GROUP BY 1) AS x (status, n)),
		  (SELECT string_agg(format('%s (%s)', name, routing), ', ' ORDER BY name) FROM teams),
		  (SELECT count(*) FROM team_members),
		  (SELECT string_agg(format('%s %s priority %s', t.name, c.chat_state, c.priority), ', '
		                     ORDER BY t.name, c.chat_state, c.priority)
		   FROM chats c JOIN teams t ON t.id = c.team_id),
		  (SELECT string_agg(format('%s to %s', reason, CASE WHEN to_operator_id IS NULL THEN 'a team' ELSE 'an operator' END),
		                     ', ' ORDER BY id) FROM chat_transfers))}),
	'presence away 1, offline 1, online 4; teams Billing (manual), Tech support (least_loaded); members 4; '
	  . 'chats in teams Billing waiting_assignment priority 0, Billing waiting_assignment priority 5, '
	  . 'Tech support waiting_assignment priority 0, Tech support waiting_assignment priority 1, '
	  . 'Tech support assigned priority 0, Tech support assigned priority 0, Tech support assigned priority 2; '
	  . 'transfers transfer to an operator, crash expert to an operator, transfer to an operator, '
	  . 'refund needs a fix first to a team, transfer to an operator',
	'source: operators online, away and offline; two teams with members; chats waiting and assigned in teams, with priorities; transfers to an operator and to a team');
# Tech support's routing is least_loaded: its chats were given to a member as they started
# waiting (at start, or moved there by a transfer), and the two that wait there do so
# because no member online has room.
is( q_($node, $src, q{
		SELECT string_agg(format('%s -> %s', (SELECT m.content FROM messages m WHERE m.chat_id = e.chat_id
		                                       ORDER BY m.id LIMIT 1), o.name), ', ' ORDER BY e.id)
		FROM chat_events e JOIN operators o ON o.id = e.operator_id
		WHERE e.reason = 'auto_assigned' AND e.old_state = 'waiting_assignment' AND e.new_state = 'assigned';
		SELECT string_agg(format('%s %s %s of %s', o.name, o.status,
		                         (SELECT count(*) FROM chats c WHERE c.assigned_operator_id = o.id),
		                         o.max_concurrent_chats), ', ' ORDER BY o.name)
		FROM operators o JOIN team_members m ON m.operator_id = o.id JOIN teams t ON t.id = m.team_id
		WHERE t.name = 'Tech support'}),
	"The app crashes when I log in -> Eve Nakamura, How do I reset my password? -> Chloé Dubois, "
	  . "Can I get a refund for order #2016? -> Chloé Dubois\n"
	  . 'Chloé Dubois online 3 of 3, Eve Nakamura away 1 of 2',
	'source: least_loaded assigned the Tech support chats as they started waiting (auto_assigned: the most room, then never assigned first); its waiting chats have no member online with room');
my $queue_sql = q{
	SELECT waiting_count, assigned_count, waiting_reply_count, active_operators,
	       busy_operators, available_operators FROM get_assignment_queue_status()};
# The queues as a user and a supervisor see them (the ages, which depend on now(), only as
# there or not).
my $teams_sql = q{
	SELECT team_name, routing, waiting, assigned, eligible, online, available,
	       oldest_waiting_seconds IS NOT NULL FROM team_queue_status;
	SELECT c.id, p.queue_position, p.waiting_ahead, p.estimated_wait_seconds IS NOT NULL
	FROM chats c CROSS JOIN LATERAL get_queue_position(c.id) AS p ORDER BY c.id};
my $src_teams = q_($node, $src, $teams_sql);
# The service metrics from a fixed start (the first chat's creation): what they answer then
# depends on the rows only, not on now(). For all chats, without a team and per team, and
# for one team alone.
my $metrics_since = q_($node, $src, 'SELECT min(created_at) FROM chats');
my $metrics_sql = qq{
	SELECT * FROM get_service_metrics('$metrics_since');
	SELECT * FROM get_service_metrics('$metrics_since', (SELECT id FROM teams WHERE name = 'Tech support'))};
my $src_metrics = q_($node, $src, $metrics_sql);
is( q_($node, $src, qq{
		SELECT scope, team_name, chats_started, first_response_p50 IS NOT NULL, wait_to_assignment_p90 IS NOT NULL,
		       transfers, idle_releases, abandoned
		FROM get_service_metrics('$metrics_since')}),
	"all||21|t|t|5|1|1\nno_team||14|t|t|0|1|1\nteam|Billing|2|f|t|3|0|0\nteam|Tech support|5|f|t|2|0|0",
	'source: get_service_metrics from the first chat on: chats started, answered and assigned, transfers, an idle release, an abandoned chat');
my $src_max_transfer = q_($node, $src, 'SELECT max(id) FROM chat_transfers');
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
	is(q_($node, $db, $teams_sql), $src_teams,
		"$label: team_queue_status and every chat's get_queue_position() as in the source");
	is(q_($node, $db, $metrics_sql), $src_metrics,
		"$label: get_service_metrics from the same fixed start equal the source's, every column (all, no team, per team, one team)");
	is( q_($node, $db, q{
			SELECT transfer_chat(c.id, p_to_team_id => t.id, p_reason => 'after the restore')
			FROM chats c, teams t
			WHERE c.real_user_id = '00000000-0000-4000-8000-000000000016' AND t.name = 'Billing';
			SELECT max(id) FROM chat_transfers WHERE reason = 'after the restore'}) =~ /^t\n([0-9]+)$/
		  && $1 > $src_max_transfer,
		1, "$label: a transfer works, its id continues above the source's ($src_max_transfer)");
	invariants_hold($node, $db, $label);
	works($node, $db, $label);
}

$node->stop;
done_testing();
