# A physical streaming replica (a base backup) answers the monitoring, the teams' queues,
# the queue positions and the service metrics as the primary does once replay caught up,
# and refuses what writes.
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
# A team made then, whose routing is round_robin, with a member, chats in it with
# priorities, a transfer between teams and a change of presence, besides fill.sql's teams,
# transfers and presence.
my $op = $primary->safe_psql($db, "SELECT create_operator('standby op', 2)");
my $returns = $primary->safe_psql($db, "SELECT create_team('Returns', 'round_robin')");
$primary->safe_psql($db, "SELECT add_team_member('$returns', '$op')");
my $chats = $primary->safe_psql($db,
	"SELECT count(start_chat(gen_random_uuid(), 'after the backup ' || g)) FROM generate_series(1, 5) g");
# Each its own call, in order: the first two are given to the member as they start
# (round_robin), the other three wait (the member is at capacity).
my @returns_chats = map {
	$primary->safe_psql($db,
		"SELECT start_chat(gen_random_uuid(), 'I want to return order #' || (3000 + $_), NULL, '$returns', $_ % 3)")
} 1 .. 5;
my $returns_board = q{
	SELECT string_agg(c.chat_state || coalesce(' ' || e.reason, ''), ', ' ORDER BY c.created_at)
	FROM chats c JOIN teams t ON t.id = c.team_id AND t.name = 'Returns'
	LEFT JOIN LATERAL (SELECT reason FROM chat_events e WHERE e.chat_id = c.id AND e.new_state = 'assigned'
	                   ORDER BY e.id DESC LIMIT 1) e ON c.chat_state = 'assigned'};
is($primary->safe_psql($db, $returns_board),
	'assigned auto_assigned, assigned auto_assigned, waiting_assignment, waiting_assignment, waiting_assignment',
	'primary: a round_robin team gives its chats to its member as they start, up to capacity (auto_assigned); the rest wait');
# The member answers one: the reply frees room, and the same call gives it the next chat of
# the queue (the highest priority: the fifth, priority 2).
$primary->safe_psql($db, "SELECT operator_send_message('$returns_chats[1]', '$op', 'Send it back, label attached')");
is( $primary->safe_psql($db, "SELECT chat_state, assigned_operator_id = '$op' FROM chats WHERE id = '$returns_chats[4]'"),
	'assigned|t', 'primary: the reply pulls the next Returns chat in the same call');
$primary->safe_psql($db, qq{
	SELECT transfer_chat('$returns_chats[2]', p_to_team_id => id, p_reason => 'damaged: billing refunds it')
	FROM teams WHERE name = 'Billing'});
$primary->safe_psql($db, q{SELECT set_operator_status(id, 'away') FROM operators WHERE name = 'Alice Martin'});
my $lsn = $primary->safe_psql('postgres', 'SELECT pg_current_wal_lsn()');
$primary->wait_for_catchup($standby, 'replay', $lsn);
is(q_($standby, 'postgres', "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn"), 't',
	"replay caught up with the primary ($chats chats started after the backup)");

# What the comparisons below read on the primary: waiting chats in every queue (three teams
# and the one without a team), more than one in some, and assigned ones.
is( q_($primary, $db, q{
		SELECT count(DISTINCT c.team_id) FILTER (WHERE p.queue_position IS NOT NULL),
		       bool_or(p.queue_position IS NOT NULL AND c.team_id IS NULL),
		       max(p.queue_position) > 1, bool_or(p.estimated_wait_seconds IS NOT NULL),
		       count(*) FILTER (WHERE c.chat_state = 'assigned' AND c.team_id IS NOT NULL) > 0
		FROM chats c CROSS JOIN LATERAL get_queue_position(c.id) AS p}),
	'3|t|t|t|t',
	'the primary has waiting chats in three teams and without a team, positions past 1, estimates, assigned team chats');

# The service metrics from a fixed start (the first chat's creation), so that nothing they
# answer depends on now(); chats of every scope were started and assigned.
my $metrics_since = q_($primary, $db, 'SELECT min(created_at) FROM chats');
is( q_($primary, $db, qq{
		SELECT string_agg(format('%s %s: %s started, %s', scope, coalesce(team_name, ''), chats_started,
		                         (wait_to_assignment_p50 IS NOT NULL)::text), ', ' ORDER BY scope, team_name)
		FROM get_service_metrics('$metrics_since')}),
	'all : 31 started, true, no_team : 19 started, true, team Billing: 3 started, true, '
	  . 'team Returns: 4 started, true, team Tech support: 5 started, true',
	'the primary has service metrics for all chats, those without a team and each team');

# The same answers: everything but the ages, which depend on now().
for my $q (
	'SELECT waiting_count, assigned_count, waiting_reply_count, active_operators, busy_operators, available_operators FROM get_assignment_queue_status()',
	'SELECT chat_state, chat_count, oldest_state_changed_at FROM chat_state_summary',
	'SELECT chat_id, chat_state, state_changed_at, assigned_operator_id, last_operator_id, operator_name FROM detect_stuck_chats(0.000001)',
	'SELECT * FROM operator_assignment_stats ORDER BY operator_id',
	'SELECT * FROM operator_activity ORDER BY chat_id',
	'SELECT team_id, team_name, routing, waiting, assigned, eligible, online, available FROM team_queue_status',
	'SELECT c.id, p.queue_position, p.waiting_ahead FROM chats c CROSS JOIN LATERAL get_queue_position(c.id) AS p ORDER BY c.id',
	"SELECT * FROM get_service_metrics(p_since => '$metrics_since')",
	"SELECT * FROM get_service_metrics(p_team_id => '$returns', p_since => '$metrics_since')")
{
	my $on_primary = q_($primary, $db, $q);
	isnt($on_primary, '', 'the primary has rows for: ' . substr($q, 0, 60) . '...');
	is(q_($standby, $db, $q), $on_primary, 'standby = primary: ' . substr($q, 0, 60) . '...');
}

# The ages: the standby answers later, so each is larger by at most the time between the
# two queries (times what it grows by per second: 1 for the oldest wait, rounded to 0.1 s;
# at most the chat's position for a wait estimate: position x seconds / chats served).
# Each line: the time of the query, then "what|key|age|rate".
my $ages_sql = q{
	SELECT extract(epoch FROM now());
	SELECT 'oldest', coalesce(team_name, '(no team)'), coalesce(oldest_waiting_seconds, -1), 1
	FROM team_queue_status;
	SELECT 'estimate', c.id, coalesce(p.estimated_wait_seconds, -1), coalesce(p.queue_position, 0)
	FROM chats c CROSS JOIN LATERAL get_queue_position(c.id) AS p};
sub ages
{
	my ($t, @lines) = split /\n/, q_($_[0], $db, $ages_sql);
	return ($t, { map { my ($what, $key, $age, $rate) = split /\|/; ("$what $key" => [ $age, $rate ]) } @lines });
}
my ($t_primary, $on_primary) = ages($primary);
my ($t_standby, $on_standby) = ages($standby);
my $elapsed = $t_standby - $t_primary;
my @off = grep {
	my ($p, $rate) = @{ $on_primary->{$_} };
	my $s = $on_standby->{$_} ? $on_standby->{$_}[0] : 'missing';
	my $slack = /^oldest/ ? 0.1 : 1e-6;
	$s eq 'missing' || ($p < 0) != ($s < 0)
	  || ($p >= 0 && ($s < $p - $slack || $s > $p + $rate * $elapsed + $slack))
} sort keys %$on_primary;
is(join(', ', @off) . ' / ' . scalar(keys %$on_standby), ' / ' . scalar(keys %$on_primary),
	sprintf('standby = primary, %.3f s later: every oldest_waiting_seconds of team_queue_status and every estimated_wait_seconds of get_queue_position', $elapsed));
invariants_hold($standby, $db, 'on the standby');

# What writes is refused there, with PostgreSQL's code for it; read_chat_events says why.
my ($billing, $alice) = split /\|/, q_($primary, $db, q{
	SELECT (SELECT id FROM teams WHERE name = 'Billing'), (SELECT id FROM operators WHERE name = 'Alice Martin')});
for my $call (
	[ 'start_chat', "SELECT start_chat(gen_random_uuid(), 'on the standby')" ],
	[ 'start_chat in a team', "SELECT start_chat(gen_random_uuid(), 'on the standby', NULL, '$returns', 5)" ],
	[ 'set_operator_status', "SELECT set_operator_status('$op', 'offline')" ],
	[ 'transfer_chat to a team', "SELECT transfer_chat('$returns_chats[3]', p_to_team_id => '$billing')" ],
	[ 'transfer_chat to an operator', "SELECT transfer_chat('$returns_chats[3]', p_to_operator_id => '$op')" ],
	[ 'create_team', "SELECT create_team('On the standby')" ],
	[ 'set_team_routing', "SELECT set_team_routing('$returns', 'least_loaded')" ],
	[ 'add_team_member', "SELECT add_team_member('$returns', '$alice')" ],
	[ 'remove_team_member', "SELECT remove_team_member('$returns', '$op')" ],
	[ 'set_chat_priority', "SELECT set_chat_priority('$returns_chats[3]', 9)" ])
{
	my ($name, $sql) = @$call;
	is(sqlstate($standby, $db, $sql), '25006',
		"$name (a call that writes) is refused on the standby: 25006 (read_only_sql_transaction)");
}
is(sqlstate($standby, $db, 'SELECT * FROM read_chat_events(0, 10)'), '0A000',
	'read_chat_events on the standby: 0A000 (it runs on the primary)');

$standby->stop;
$primary->stop;
done_testing();
