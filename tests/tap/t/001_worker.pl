# The idle-release background worker (shared_preload_libraries): it starts per database of
# chat_assign.databases, waits for the extension, releases idle chats with no client
# calling release_idle_assignments(), marks idle operators away (chat_assign.away_after),
# gives the waiting chats of pushed queues to members with room, logs what it did, survives
# failing passes, re-reads its settings on reload, stops cleanly, and never runs objects a
# database owner planted.
# Without preload the same settings start nothing.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);
use ChatAssign;

# ---------------------------------------------------------------- without preload
# The same settings start nothing; its idle chat is looked at again at the end.
my $nopre = node_with('nopre',
	[ "chat_assign.databases = 'ops_nopre'", 'chat_assign.idle_check_interval = 1' ]);
$nopre->safe_psql('postgres', 'CREATE DATABASE ops_nopre');
$nopre->safe_psql('ops_nopre',
	"CREATE EXTENSION chat_assign; ALTER DATABASE ops_nopre SET chat_assign.idle_timeout = 2");
my $nopre_op = $nopre->safe_psql('ops_nopre', "SELECT create_operator('no preload')");
$nopre->safe_psql('ops_nopre', "SELECT start_chat(gen_random_uuid(), 'Hello?')");
my $nopre_chat = $nopre->safe_psql('ops_nopre', "SELECT assign_chat_to_operator('$nopre_op')");
my $nopre_since = time();

# ---------------------------------------------------------------- the worker cluster
# The databases exist before the library is preloaded (a worker for a missing database
# would fail and restart). ops_b gets the extension later.
my $node = node_with('worker',
	[ "chat_assign.databases = 'ops_a,ops_b'", 'chat_assign.idle_check_interval = 1',
	  'chat_assign.idle_timeout = 2' ]);
$node->safe_psql('postgres', 'CREATE DATABASE ops_a');
$node->safe_psql('postgres', 'CREATE DATABASE ops_b');
# ops_b belongs to a non-superuser, who plants an '=' for oid in public and puts public
# first on the database's search_path, and a zero-argument release_idle_assignments()
# beside the extension's (which would make a call by name ambiguous): the worker, a
# superuser, must never run either, nor fail because of them.
$node->safe_psql('ops_b', q{
	CREATE ROLE ops_b_owner NOLOGIN;
	ALTER DATABASE ops_b OWNER TO ops_b_owner;
	SET ROLE ops_b_owner;
	CREATE TABLE public.ops_trap (pid int, run_as name);
	CREATE FUNCTION public.ops_trap_eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO public.ops_trap VALUES (pg_backend_pid(), current_user);
	         RETURN $1 OPERATOR(pg_catalog.=) $2; END$$;
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.ops_trap_eq);
	CREATE FUNCTION public.release_idle_assignments()
	  RETURNS TABLE (chat_id uuid, operator_id uuid, idle_seconds float8) LANGUAGE sql AS
	  $$INSERT INTO public.ops_trap VALUES (pg_backend_pid(), current_user)
	    RETURNING NULL::uuid, NULL::uuid, 0::float8$$;
	ALTER DATABASE ops_b SET search_path = public, pg_catalog;
});
$node->safe_psql('ops_a', 'CREATE EXTENSION chat_assign');
my @ops = split /\n/,
  $node->safe_psql('ops_a', "SELECT create_operator('worker op ' || g) FROM generate_series(1, 3) AS g");
$node->safe_psql('ops_a', "SELECT start_chat(gen_random_uuid(), 'chat ' || g) FROM generate_series(1, 3) AS g");
my $c_replied = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$ops[1]')");
$node->safe_psql('ops_a', "SELECT operator_send_message('$c_replied', '$ops[1]', 'Hi!')");
$node->safe_psql('postgres', "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'");
my $from = -s $node->logfile;
$node->restart;

sub worker_pid
{
	return $node->safe_psql('postgres', qq{
		SELECT pid FROM pg_stat_activity WHERE backend_type = '$WORKER_TYPE' AND datname = '$_[0]'});
}
sub log_has { return log_count($node, $from, $_[0]) > 0; }
# The chats of a database back in the queue by an idle release.
sub idle_released
{
	return q_($node, $_[0], q{
		SELECT count(*) FROM chats c WHERE chat_state = 'waiting_assignment'
		  AND (SELECT release_reason FROM chat_assignments a WHERE a.chat_id = c.id
		       ORDER BY a.id DESC LIMIT 1) = 'idle_timeout'});
}
sub state_is
{
	my ($db, $chat, $state) = @_;
	return q_($node, $db, "SELECT chat_state FROM chats WHERE id = '$chat'") eq $state;
}

poll(15, sub { worker_databases($node) eq 'ops_a ops_b' });
is(worker_databases($node), 'ops_a ops_b', "pg_stat_activity has a '$WORKER_TYPE' in ops_a and in ops_b");
my $pid_a = worker_pid('ops_a');
for my $db (qw(ops_a ops_b))
{
	ok(log_has(qq{chat_assign: idle worker started in database "$db" (every 1 s)}),
		qq{log: 'idle worker started in database "$db" (every 1 s)'});
}
my $not_installed =
  'chat_assign: extension chat_assign is not installed in database "ops_b"; idle worker waiting';
poll(5, sub { log_has($not_installed) });
ok(log_has($not_installed), "log: ops_b without the extension: 'not installed ... idle worker waiting'");

# ops_a: one chat left idle, one kept alive by heartbeats, one waiting for its user.
# ops_b: the extension arrives, with 25 idle chats (more than the log names one by one).
# A session LISTENs in ops_a meanwhile; what it got is read when its sleep ends.
my $listener = $node->background_psql('ops_a');
$listener->query_safe('LISTEN chat_assign');
my $c_idle = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$ops[0]')");
my $c_hb = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$ops[2]')");
$node->safe_psql('ops_b', 'CREATE EXTENSION chat_assign');
my $b_op = $node->safe_psql('ops_b', "SELECT create_operator('worker op b', 25)");
$node->safe_psql('ops_b', qq{
	SELECT start_chat(gen_random_uuid(), 'Hello ' || g) FROM generate_series(1, 25) AS g;
	SELECT assign_chat_to_operator('$b_op') FROM generate_series(1, 25)});
my $t0 = time();
sub heartbeat { $node->safe_psql('ops_a', "SELECT touch_operator_activity('$ops[2]', '$c_hb')"); }
# Heartbeat every 0.5 s until the idle chat is released and at least 5 s (several passes
# past the 2 s threshold) have gone by; 15 s at most.
while (1)
{
	heartbeat();
	last if state_is('ops_a', $c_idle, 'waiting_assignment') && time() - $t0 >= 5;
	last if time() - $t0 >= 15;
	sleep 0.5;
}
is(last_release($node, 'ops_a', $c_idle), 'waiting_assignment idle_timeout',
	'ops_a: the idle chat is released by the worker within 15 s, no client calling release_idle_assignments');
is( q_($node, 'ops_a', qq{
		SELECT released_at - assigned_at >= interval '2 s' FROM chat_assignments
		WHERE chat_id = '$c_idle' ORDER BY id DESC LIMIT 1}),
	't', 'ops_a: not before the 2 s chat_assign.idle_timeout of postgresql.conf');
is(last_release($node, 'ops_a', $c_hb), 'assigned (open)',
	'ops_a: a chat whose operator keeps sending heartbeats stays assigned');
is(last_release($node, 'ops_a', $c_replied), 'waiting_real_user_reply operator_replied',
	'ops_a: a chat in waiting_real_user_reply is never touched');
ok(log_has('chat_assign: released 1 idle chat(s) in database "ops_a"'),
	q{log: 'released 1 idle chat(s) in database "ops_a"'});
my ($idle_s) = log_since($node, $from) =~
  /chat_assign: released chat \Q$c_idle\E from operator \Q$ops[0]\E after ([0-9]+) s idle/;
ok(defined $idle_s && $idle_s >= 2,
	q{log: 'released chat <chat> from operator <operator> after <n> s idle' with n >= 2});
poll(10, sub { idle_released('ops_b') eq '25' });
is(idle_released('ops_b'), '25', 'ops_b: once the extension is created there, its 25 idle chats are released too');
ok(log_has('chat_assign: released 25 idle chat(s) in database "ops_b"'),
	q{log: 'released 25 idle chat(s) in database "ops_b"'});
my $pid_b = worker_pid('ops_b');
is(scalar(() = log_since($node, $from) =~
	  /\[$pid_b\] LOG:  chat_assign: released chat [0-9a-f-]+ from operator \Q$b_op\E after/g),
	20, 'log: then one line per chat for 20 of the 25');
is(log_count($node, $from, $not_installed), 1, "log: 'not installed' was logged once, not on every pass");
is( q_($node, 'ops_a', q{
		SELECT database, idle_passes > 0, failed_passes, started_at < last_pass_at
		FROM worker_status() ORDER BY 1}),
	"ops_a|t|0|t\nops_b|t|0|t", 'worker_status(): both workers made idle passes, none failed');
is(q_($node, 'ops_b', "SELECT count(*) FROM public.ops_trap WHERE pid = $pid_b"),
	'0', "ops_b: the worker never ran the database owner's '=' for oid nor its release_idle_assignments()");
is( q_($node, 'ops_b', q{
		SELECT 1::oid = 1::oid;
		SELECT count(*) FROM public.ops_trap WHERE pid = pg_backend_pid()}),
	"t\n1", "ops_b: the trap does catch a session that looks '=' up on the database's search_path");

# The release is an event row; LISTEN clients get the worker's wake-up, whose payload is
# the newest event id (a hint), never the event itself. psql prints what arrived after
# its next command.
my $heard = $listener->query_safe('SELECT 1');
$listener->quit;
my $idle_event = q_($node, 'ops_a', qq{
	SELECT max(id) FROM chat_events WHERE chat_id = '$c_idle'
	  AND operator_id = '$ops[0]' AND reason = 'idle_timeout'
	  AND old_state = 'assigned' AND new_state = 'waiting_assignment'});
my @woken = sort { $a <=> $b }
  $heard =~ /with payload "([0-9]+)" received from server process with PID $pid_a\./g;
ok($idle_event =~ /^[0-9]+$/ && @woken && $woken[-1] >= $idle_event,
	'ops_a: the idle release has its event (assigned -> waiting_assignment, idle_timeout), and a LISTEN client gets a wake-up from the worker with a payload at or past its id')
  or diag("event id '$idle_event', what the listener got: $heard");

# A pass that fails: a user trigger refuses every update of chat_assignments. The passes
# try to release a chat assigned once the trigger is in place (an assignment is an insert,
# which the trigger lets through): the heartbeat chat may already be gone, released 2 s
# after its last heartbeat when the checks above took that long.
$node->safe_psql('ops_a', q{
	CREATE FUNCTION ops_refuse() RETURNS trigger LANGUAGE plpgsql
	  AS $$BEGIN RAISE EXCEPTION 'ops test: chat_assignments is read-only'; END$$;
	CREATE TRIGGER ops_refuse BEFORE UPDATE ON chat_assignments
	  FOR EACH ROW EXECUTE FUNCTION ops_refuse()});
my $c_fail = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$ops[0]')");
my $warning =
  'WARNING:  chat_assign: idle release in database "ops_a" failed: ops test: chat_assignments is read-only';
poll(15, sub { log_count($node, $from, $warning) >= 2 });
ok(log_has($warning), "a failing pass logs: $warning");
ok(log_count($node, $from, $warning) >= 2, 'the worker goes on after a failed pass (the next pass fails again)');
is(last_release($node, 'ops_a', $c_fail), 'assigned (open)', 'a failed pass changes nothing: the chat is still assigned');
is(worker_pid('ops_a'), $pid_a, "the same worker process after failed passes (pid $pid_a)");
is( q_($node, 'ops_a', q{
		SELECT failed_passes >= 2, last_error, last_error_at > now() - interval '1 minute'
		FROM worker_status() WHERE database = 'ops_a'}),
	't|ops test: chat_assignments is read-only|t',
	'worker_status(): the failed passes are counted, with the last error and its time');
$node->safe_psql('ops_a', 'DROP TRIGGER ops_refuse ON chat_assignments; DROP FUNCTION ops_refuse()');
poll(10, sub { state_is('ops_a', $c_fail, 'waiting_assignment') });
is(last_release($node, 'ops_a', $c_fail), 'waiting_assignment idle_timeout',
	'after the trigger is dropped a later pass releases the chat');
is(worker_pid('ops_a'), $pid_a, "still the same worker process (pid $pid_a)");

# A reload re-reads idle_check_interval and runs a pass at once.
$node->safe_psql('postgres',
	'ALTER SYSTEM SET chat_assign.idle_check_interval = 3600; SELECT pg_reload_conf()');
sleep 1.5;
my $c_h = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$ops[1]')");
sleep 3.5;
is(last_release($node, 'ops_a', $c_h), 'assigned (open)',
	'reload with idle_check_interval = 3600: no pass for 3.5 s, the idle chat stays assigned');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
poll(5, sub { state_is('ops_a', $c_h, 'waiting_assignment') });
is(last_release($node, 'ops_a', $c_h), 'waiting_assignment idle_timeout',
	'a reload (SIGHUP) runs a pass at once: released within 5 s');
is(worker_pid('ops_a'), $pid_a, "same worker process after the reloads (pid $pid_a)");
$node->safe_psql('postgres',
	'ALTER SYSTEM RESET chat_assign.idle_check_interval; SELECT pg_reload_conf()');

# ---------------------------------------------------------------- presence: away_after
# chat_assign.away_after has been 0 (the default) so far: many passes ran while every
# operator sat idle for longer than the threshold used below, and none was marked away.
is( q_($node, 'ops_a', q{
		SELECT (SELECT string_agg(DISTINCT status, ',') FROM operators),
		       (SELECT bool_and(greatest(status_changed_at, last_assigned_at) < now() - interval '3 s')
		        FROM operators),
		       (SELECT idle_passes >= 10 FROM worker_status() WHERE database = 'ops_a')}),
	'online|t|t',
	'away_after = 0 (the default): after 10 passes or more, operators idle for over 3 s are all still online');
is(log_count($node, $from, 'marked away'), 0, "away_after = 0: no 'marked away' in the log");

# The presence of every operator of a database, in name order.
sub statuses
{
	return q_($node, $_[0], q{SELECT string_agg(status, ',' ORDER BY name) FROM operators});
}
sub status_of { return q_($node, 'ops_a', "SELECT status FROM operators WHERE id = '$_[0]'"); }
# The lines "N operator(s) marked away in database DB" since OFFSET: N of each, in order.
sub marked_away
{
	my ($offset, $db) = @_;
	return join ' ', log_since($node, $offset) =~
	  /chat_assign: ([0-9]+) operator\(s\) marked away in database "\Q$db\E"/g;
}

# A reload with away_after = 3 runs a pass at once: the operators idle that long (all of
# them) are marked away, in both databases.
$node->safe_psql('postgres', 'ALTER SYSTEM SET chat_assign.away_after = 3; SELECT pg_reload_conf()');
poll(10, sub { statuses('ops_a') eq 'away,away,away' && statuses('ops_b') eq 'away' });
is(statuses('ops_a') . ' / ' . statuses('ops_b'), 'away,away,away / away',
	'reload with away_after = 3: the idle online operators of ops_a (3) and ops_b (1) are marked away');
poll(5, sub { marked_away($from, 'ops_b') ne '' });
is(marked_away($from, 'ops_b'), '1', q{log: '1 operator(s) marked away in database "ops_b"', once});
my $marked_a = 0;
$marked_a += $_ for split / /, marked_away($from, 'ops_a');
is($marked_a, 3, q{log: 'N operator(s) marked away in database "ops_a"', 3 operators in all});

# Three new operators: one does nothing, one takes a chat and sends heartbeats, one goes
# offline (the worker only ever turns online operators away).
my $away_from = -s $node->logfile;
$node->safe_psql('ops_a', "SELECT start_chat(gen_random_uuid(), 'presence ' || g) FROM generate_series(1, 2) AS g");
my $op_idle = $node->safe_psql('ops_a', "SELECT create_operator('presence: idle')");
my $op_hb = $node->safe_psql('ops_a', "SELECT create_operator('presence: heartbeats')");
my $op_off = $node->safe_psql('ops_a', "SELECT create_operator('presence: offline')");
$node->safe_psql('ops_a', "SELECT set_operator_status('$op_off', 'offline')");
my $hb_chat = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$op_hb')");
my $t_new = time();
# Heartbeats every 0.5 s until the idle operator is away and 6 s (the threshold twice) have
# gone by since the heartbeat operator's assignment; 20 s at most.
while (1)
{
	$node->safe_psql('ops_a', "SELECT touch_operator_activity('$op_hb', '$hb_chat')");
	last if status_of($op_idle) eq 'away' && time() - $t_new >= 6;
	last if time() - $t_new >= 20;
	sleep 0.5;
}
# Back to away_after = 0 at once: the heartbeats stop here, and what follows must not race
# with a pass that would mark the heartbeat operator away 3 s later.
$node->safe_psql('postgres', 'ALTER SYSTEM RESET chat_assign.away_after; SELECT pg_reload_conf()');
my $zero_from = -s $node->logfile;
my $passes = q_($node, 'ops_a', "SELECT idle_passes FROM worker_status() WHERE database = 'ops_a'");
is( q_($node, 'ops_a', qq{
		SELECT status, status_changed_at - created_at >= interval '3 s'
		FROM operators WHERE id = '$op_idle'}),
	'away|t', 'an online operator without activity is marked away by the worker, not before the 3 s of away_after');
is( q_($node, 'ops_a', qq{
		SELECT o.status, now() - o.last_assigned_at > interval '3 s', c.chat_state
		FROM operators o JOIN chats c ON c.assigned_operator_id = o.id
		WHERE o.id = '$op_hb' AND c.id = '$hb_chat'}),
	'online|t|assigned',
	'an operator whose chat gets heartbeats stays online (assigned more than 3 s ago), and keeps the chat');
is(status_of($op_off), 'offline', 'an offline operator stays offline');
poll(5, sub { marked_away($away_from, 'ops_a') ne '' });
is(marked_away($away_from, 'ops_a'), '1',
	q{log: '1 operator(s) marked away in database "ops_a"' for the idle one, nothing else});

# Away, it asks for a chat: it is online again (and gets one).
my $back_chat = $node->safe_psql('ops_a', "SELECT assign_chat_to_operator('$op_idle')");
is( q_($node, 'ops_a', qq{
		SELECT o.status, o.status_changed_at > now() - interval '2 s', c.chat_state
		FROM operators o JOIN chats c ON c.assigned_operator_id = o.id
		WHERE o.id = '$op_idle' AND c.id = '$back_chat'}),
	'online|t|assigned', 'an away operator who asks for a chat (assign_chat_to_operator) is online again and has it');

# With away_after = 0 again, both chats go back by idle_timeout, and through the passes
# that follow the two online operators stay online.
poll(20, sub {
	q_($node, 'ops_a', qq{
		SELECT (SELECT idle_passes >= $passes + 5 FROM worker_status() WHERE database = 'ops_a')
		   AND (SELECT bool_and(greatest(status_changed_at, last_assigned_at) < now() - interval '4 s')
		        FROM operators WHERE id IN ('$op_idle', '$op_hb'))}) eq 't'
});
is( q_($node, 'ops_a', qq{
		SELECT string_agg(status, ',' ORDER BY name),
		       (SELECT idle_passes >= $passes + 5 FROM worker_status() WHERE database = 'ops_a'),
		       bool_and(greatest(status_changed_at, last_assigned_at) < now() - interval '4 s')
		FROM operators WHERE id IN ('$op_idle', '$op_hb')}),
	'online,online|t|t',
	'reload with away_after = 0: 5 passes later, two operators idle for over 4 s are still online');
is(log_count($node, $zero_from, 'marked away'), 0, "away_after = 0: no 'marked away' in the log since");

# ---------------------------------------------------------------- automatic assignment
# The worker's assignment pass gives the waiting chats of a pushed queue (a team whose
# routing is least_loaded or round_robin) to its members with room: the chats a push passed
# by, and those of a team switched to a pushed routing, which set_team_routing does not
# assign by itself. idle_timeout goes up first: a chat the worker assigns must not be
# released 2 s later (and pushed again) while the checks run.
$node->safe_psql('postgres', 'ALTER SYSTEM SET chat_assign.idle_timeout = 3600; SELECT pg_reload_conf()');
my $route_from = -s $node->logfile;
my $r_op = $node->safe_psql('ops_a', "SELECT create_operator('routing: member', 2)");
my $m_op = $node->safe_psql('ops_a', "SELECT create_operator('routing: manual member', 2)");
my $t_push = $node->safe_psql('ops_a', "SELECT create_team('Routing desk')");
my $t_manual = $node->safe_psql('ops_a', "SELECT create_team('Manual desk')");
$node->safe_psql('ops_a', "SELECT add_team_member('$t_push', '$r_op'), add_team_member('$t_manual', '$m_op')");
# Three chats wait in Routing desk (manual so far), two in Manual desk, each started in its
# own call.
my @r_chats = map {
	$node->safe_psql('ops_a', "SELECT start_chat(gen_random_uuid(), 'routing $_', p_team_id => '$t_push')")
} 1 .. 3;
my @m_chats = map {
	$node->safe_psql('ops_a', "SELECT start_chat(gen_random_uuid(), 'manual $_', p_team_id => '$t_manual')")
} 1 .. 2;
my $no_team_sql = q{
	SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM chats
	WHERE team_id IS NULL AND chat_state = 'waiting_assignment'};
my $no_team_waiting = q_($node, 'ops_a', $no_team_sql);

# A team's chats in start order: "state holder" each (holder: r, r2, m or -).
sub board
{
	my ($team) = @_;
	return q_($node, 'ops_a', qq{
		SELECT string_agg(c.chat_state || ' ' || CASE WHEN c.assigned_operator_id IS NULL THEN '-'
		                    WHEN c.assigned_operator_id = '$r_op' THEN 'r'
		                    WHEN c.assigned_operator_id = '$m_op' THEN 'm' ELSE 'r2' END, ', '
		                  ORDER BY c.created_at)
		FROM chats c WHERE c.team_id = '$team'});
}
# The lines "N waiting chat(s) assigned in database "ops_a"" since OFFSET: N of each, in order.
sub assigned_lines
{
	return join ' ', log_since($node, $_[0]) =~
	  /chat_assign: ([0-9]+) waiting chat\(s\) assigned in database "ops_a"/g;
}
sub passes_a { return q_($node, 'ops_a', "SELECT idle_passes FROM worker_status() WHERE database = 'ops_a'"); }
sub passes_after
{
	my ($n) = @_;
	my $from_passes = passes_a();
	poll(10, sub { passes_a() >= $from_passes + $n });
	return passes_a() >= $from_passes + $n;
}

ok(passes_after(2), 'manual routing: two more worker passes ran');
is(board($t_push) . ' / ' . board($t_manual),
	'waiting_assignment -, waiting_assignment -, waiting_assignment - / waiting_assignment -, waiting_assignment -',
	'manual routing: the worker leaves the waiting chats of both manual teams alone, though their members have room');

# The switch: within its own transaction set_team_routing has assigned nothing.
is( q_($node, 'ops_a', qq{
		BEGIN;
		SELECT set_team_routing('$t_push', 'least_loaded');
		SELECT count(*) FROM chats WHERE team_id = '$t_push' AND chat_state = 'waiting_assignment';
		COMMIT;}),
	"t\n3", "set_team_routing(Routing desk, 'least_loaded') changes the routing and assigns nothing by itself (3 chats still wait)");
poll(10, sub { board($t_push) =~ /^(assigned r, ){2}waiting_assignment -$/ && assigned_lines($route_from) ne '' });
is(board($t_push), 'assigned r, assigned r, waiting_assignment -',
	"the worker's next pass gives the member the two oldest waiting chats: its capacity (2), no more");
is( q_($node, 'ops_a', qq{
		SELECT string_agg(e.reason || ' ' || (e.operator_id = '$r_op')::text, ', ' ORDER BY e.id)
		FROM chat_events e JOIN chats c ON c.id = e.chat_id
		WHERE c.team_id = '$t_push' AND e.new_state = 'assigned'}),
	'auto_assigned true, auto_assigned true', 'each has its event: waiting_assignment -> assigned, reason auto_assigned');
is(assigned_lines($route_from), '2', q{log: '2 waiting chat(s) assigned in database "ops_a"'});
ok(passes_after(3), 'three more worker passes ran');
is(board($t_push), 'assigned r, assigned r, waiting_assignment -',
	'later passes give the member nothing more while it is at capacity: the third chat waits');
is(assigned_lines($route_from), '2', 'log: no other assignment line');

# The member answers: the reply frees room, and the same call gives it the waiting chat.
$node->safe_psql('ops_a', "SELECT operator_send_message('$r_chats[0]', '$r_op', 'On it')");
is( board($t_push) . ' / ' . q_($node, 'ops_a', qq{
		SELECT p.reason, p.at = r.at FROM chat_events p, chat_events r
		WHERE p.chat_id = '$r_chats[2]' AND p.new_state = 'assigned'
		  AND r.chat_id = '$r_chats[0]' AND r.reason = 'operator_replied'}),
	'waiting_real_user_reply -, assigned r, assigned r / auto_assigned|t',
	"the member's reply pulls the waiting chat in the same call (its auto_assigned event has the reply's transaction time)");

# A push passes by an operator whose row another call holds (it never waits for an
# operator's lock while holding a chat's): a second member with room joins, and while
# another session holds its row a chat starts in the team. The chat waits, the worker's
# passes skip the held row (without failing), and the first pass after the holder's commit
# assigns the chat.
my $r_op2 = $node->safe_psql('ops_a', "SELECT create_operator('routing: second member', 1)");
$node->safe_psql('ops_a', "SELECT add_team_member('$t_push', '$r_op2')");
my $holder = $node->background_psql('ops_a');
$holder->query_safe("BEGIN; SELECT 1 FROM operators WHERE id = '$r_op2' FOR NO KEY UPDATE");
my $failed_before = q_($node, 'ops_a', "SELECT failed_passes FROM worker_status() WHERE database = 'ops_a'");
my $held_from = -s $node->logfile;
push @r_chats, $node->safe_psql('ops_a', "SELECT start_chat(gen_random_uuid(), 'routing 4', p_team_id => '$t_push')");
is(board($t_push), 'waiting_real_user_reply -, assigned r, assigned r, waiting_assignment -',
	"a chat started in the team while the free member's row is held waits: the push passed that member by");
ok(passes_after(3), 'three more worker passes ran while the row is held');
is( board($t_push) . ' / '
	  . q_($node, 'ops_a', "SELECT failed_passes FROM worker_status() WHERE database = 'ops_a'"),
	"waiting_real_user_reply -, assigned r, assigned r, waiting_assignment - / $failed_before",
	"the worker's passes skip the held row, without waiting for it or failing: the chat still waits");
$holder->query_safe('COMMIT');
$holder->quit;
poll(10, sub { board($t_push) =~ /assigned r2$/ && assigned_lines($held_from) ne '' });
is(board($t_push), 'waiting_real_user_reply -, assigned r, assigned r, assigned r2',
	"once the row is free, the worker's next pass gives the chat to the second member");
is(assigned_lines($held_from), '1', q{log: '1 waiting chat(s) assigned in database "ops_a"'});
is( q_($node, 'ops_a', qq{
		SELECT reason FROM chat_events WHERE chat_id = '$r_chats[3]' AND new_state = 'assigned'}),
	'auto_assigned', 'its event: auto_assigned');

# Through all of it, the manual team's chats and those without a team
# (chat_assign.default_routing = manual) waited, with members and operators online with room.
is( board($t_manual) . ' / '
	  . q_($node, 'ops_a', qq{
			SELECT o.status, (SELECT count(*) FROM chats c WHERE c.assigned_operator_id = o.id), o.max_concurrent_chats
			FROM operators o WHERE o.id = '$m_op'}),
	'waiting_assignment -, waiting_assignment - / online|0|2',
	"a manual team's waiting chats are left alone, though its member is online with room");
is(q_($node, 'ops_a', $no_team_sql), $no_team_waiting,
	'the waiting chats without a team (chat_assign.default_routing = manual) are left alone too');
invariants_hold($node, 'ops_a', 'ops_a after the assignment passes');

# A fast stop: the workers say goodbye and exit cleanly.
$node->stop('fast');
for my $db (qw(ops_a ops_b))
{
	ok(log_has(qq{chat_assign: idle worker in database "$db" stopped}),
		qq{log at stop: 'idle worker in database "$db" stopped'});
}
is(join("\n", grep { /chat_assign.*(exited with exit code|terminated by signal)|PANIC/ }
	  split /\n/, log_since($node, $from)),
	'', "log: no worker exited abnormally or was restarted (no 'exited with exit code' / 'terminated by signal' / PANIC)");

# ---------------------------------------------------------------- without preload, again
is(q_($nopre, 'ops_nopre', 'SELECT count(*) FROM worker_status()'), '0',
	'without preload: worker_status() has no rows');
is( q_($nopre, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$WORKER_TYPE'"),
	'0', "without preload: no '$WORKER_TYPE' in pg_stat_activity");
is(last_release($nopre, 'ops_nopre', $nopre_chat), 'assigned (open)',
	sprintf('without preload: the idle chat is still assigned after %d s', time() - $nopre_since));
is(q_($nopre, 'ops_nopre', 'SELECT chat_id FROM release_idle_assignments()'),
	$nopre_chat, "without preload: a client's release_idle_assignments() releases it (the threshold applied)");
$nopre->stop;

done_testing();
