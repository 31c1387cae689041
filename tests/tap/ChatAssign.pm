# Helpers shared by the operations tests in tests/tap/t (PostgreSQL's own TAP framework,
# PostgreSQL::Test::Cluster). scripts/tap.sh runs them as the postgres OS user from a copy
# of the files they read, whose root is $ENV{CHAT_ASSIGN_SRC}.
package ChatAssign;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

our @EXPORT = qw(src_file sql_file node_with q_ q_err sqlstate poll works invariants_hold
  last_release executable_by log_since log_count worker_databases $WORKER_TYPE);

our $WORKER_TYPE = 'chat_assign idle worker';

# A file of the repository copy (tests/invariants.sql, sql/released/..., Cargo.toml).
sub src_file { return "$ENV{CHAT_ASSIGN_SRC}/$_[0]"; }

# The text of tests/tap/sql/NAME (SQL the tests run, psql meta-commands included).
sub sql_file { return slurp_file(src_file("tests/tap/sql/$_[0]")); }

# A new cluster NAME, started, with extra postgresql.conf lines. %opts: allows_streaming
# (1 or 'logical'), as PostgreSQL::Test::Cluster::init takes it.
sub node_with
{
	my ($name, $conf, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%opts);
	# log_min_messages = warning (the default) writes the worker's LOG lines to the log too.
	$node->append_conf('postgresql.conf', join("\n", @{ $conf || [] }) . "\n");
	$node->start;
	return $node;
}

# The output of SQL in DB (unaligned tuples, psql -XAtq), or, when it fails, its error text
# with a number no other failure has: a check that compares two results never passes because
# both failed alike.
my $failures = 0;
sub q_
{
	my ($rc, $out, $err) = run_psql(@_);
	return $out if $rc == 0;
	$failures++;
	return "psql failed (#$failures, exit $rc): $out$err";
}

# What psql printed to stderr for SQL in DB when it failed ('' when it succeeded: notices
# are not failures).
sub q_err
{
	my ($rc, $out, $err) = run_psql(@_);
	return $rc == 0 ? '' : $err;
}

# psql's exit status, stdout and stderr for SQL in DB, stopping at the first error.
sub run_psql
{
	my ($node, $db, $sql) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql($db, $sql, stdout => \$out, stderr => \$err, on_error_stop => 1);
	return ($rc, $out, $err);
}

# The databases whose idle worker runs now, in name order, space separated.
sub worker_databases
{
	my ($node) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(datname, ' ' ORDER BY datname), '') FROM pg_stat_activity
		WHERE backend_type = '$WORKER_TYPE'});
}

# The SQLSTATE SQL fails with in DB ('' when it succeeds).
sub sqlstate
{
	my ($node, $db, $sql) = @_;
	my $err = q_err($node, $db, "\\set VERBOSITY sqlstate\n$sql");
	return $err =~ /ERROR:\s+([0-9A-Z]{5})/ ? $1 : $err;
}

# True as soon as CODE returns true (tried every 0.25 s), false after SECONDS.
sub poll
{
	my ($seconds, $code) = @_;
	my $deadline = time() + $seconds;
	while (1)
	{
		return 1 if $code->();
		return 0 if time() >= $deadline;
		sleep 0.25;
	}
}

# tests/invariants.sql prints nothing in DB: every invariant holds and the monitoring agrees
# with the tables.
sub invariants_hold
{
	my ($node, $db, $label) = @_;
	is(q_($node, $db, slurp_file(src_file('tests/invariants.sql'))),
		'', "$label: the monitoring agrees with the tables, every invariant holds");
}

# "<chat state> <reason of its latest assignment>" ("(open)" while it is not released).
sub last_release
{
	my ($node, $db, $chat) = @_;
	return q_($node, $db, qq{
		SELECT c.chat_state || ' ' || coalesce(a.release_reason, '(open)')
		FROM chats c JOIN chat_assignments a ON a.chat_id = c.id
		WHERE c.id = '$chat' ORDER BY a.id DESC LIMIT 1});
}

# The extension's functions ROLE may execute in DB, one signature a line; not the CHECK
# constraints' functions, which PUBLIC may execute on purpose (sql/privileges.sql).
sub executable_by
{
	my ($node, $db, $role) = @_;
	return q_($node, $db, qq{
		SELECT p.oid::regprocedure FROM pg_proc p
		JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
		JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'chat_assign'
		WHERE d.deptype = 'e' AND has_function_privilege('$role', p.oid, 'EXECUTE')
		  AND p.proname NOT IN ('chats_state_consistent', 'messages_valid',
		                        'chat_assignments_release_valid')
		ORDER BY 1});
}

# The extension in DB (in schema s when PGOPTIONS says so) still does its job: an operator
# takes a chat, answers, the user answers back; new ids continue after the existing ones;
# afterwards the monitoring agrees with the tables and every invariant holds.
sub works
{
	my ($node, $db, $label) = @_;
	my $max_message = q_($node, $db, 'SELECT coalesce(max(id), 0) FROM messages');
	my $max_assignment = q_($node, $db, 'SELECT coalesce(max(id), 0) FROM chat_assignments');
	my $op = q_($node, $db, "SELECT create_operator('ops: $label')");
	my $chat = q_($node, $db, "SELECT assign_chat_to_operator('$op')");
	my $reply = q_($node, $db, "SELECT operator_send_message('$chat', '$op', 'Answer after: $label')");
	my $user_reply = q_($node, $db, "SELECT real_user_send_message('$chat', 'Thanks!')");
	my $assignment = q_($node, $db, "SELECT max(id) FROM chat_assignments WHERE chat_id = '$chat'");
	is(last_release($node, $db, $chat), 'waiting_assignment operator_replied',
		"$label: assign, operator reply, user message work (the chat is back in the queue)");
	is( q_($node, $db, "SELECT $reply > $max_message AND $user_reply > $reply
		                     AND $assignment > $max_assignment"),
		't', "$label: new message and assignment ids continue above the existing ones");
	invariants_hold($node, $db, $label);
}

# The server log of NODE from byte OFFSET on.
sub log_since
{
	my ($node, $offset) = @_;
	my $log = slurp_file($node->logfile);
	return substr($log, $offset // 0);
}

# How many lines of the log since OFFSET contain TEXT.
sub log_count
{
	my ($node, $offset, $text) = @_;
	return scalar grep { index($_, $text) >= 0 } split /\n/, log_since($node, $offset);
}

1;
