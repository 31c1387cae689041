# Change events end to end (chat_events, read_chat_events, the worker's coalesced wake-up
# NOTIFY), checked by the chat_assign_events client of tests/stress (src/bin/events.rs)
# against a server with the worker preloaded. Each of its checks is one test here.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use ChatAssign;

my $node = node_with('events',
	[ 'max_prepared_transactions = 10', "chat_assign.databases = 'ops_events'" ]);
$node->safe_psql('postgres', 'CREATE DATABASE ops_events');
$node->safe_psql('ops_events', 'CREATE EXTENSION chat_assign');
$node->safe_psql('postgres', "ALTER SYSTEM SET shared_preload_libraries = 'chat_assign'");
$node->restart;
my $from = -s $node->logfile;
poll(15, sub { worker_databases($node) eq 'ops_events' });
is(worker_databases($node), 'ops_events', "a '$WORKER_TYPE' runs in ops_events");

my ($out, $err) = ('', '');
my $dsn = sprintf('host=%s port=%d user=postgres dbname=ops_events', $node->host, $node->port);
IPC::Run::run([ $ENV{CHAT_ASSIGN_EVENTS_BIN}, '--dsn', $dsn ], '>', \$out, '2>', \$err);
# The whole wait status: a client killed by a signal did not pass, whatever it printed.
my $rc = $?;
my $checks = 0;
for my $line (split /\n/, $out)
{
	if ($line =~ /^(not )?ok - (.*)$/)
	{
		ok(!defined $1, $2);
		$checks++;
	}
	elsif ($line =~ /^#/) { note($line =~ s/^#\s?//r); }
}
my ($passed, $failed) = $out =~ /^events: ([0-9]+) passed, ([0-9]+) failed$/m;
ok($rc == 0 && defined $passed && $passed == $checks && $failed == 0,
	"chat_assign_events ran to its end: exit status 0, its summary counts the $checks checks above, none failed")
  or diag("wait status $rc\n$err");

is(join("\n", grep {
			/chat_assign: (wake-up NOTIFY|reading the newest event|deleting expired events)|chat_assign.*(exited with exit code|terminated by signal)/
		} split /\n/, log_since($node, $from)),
	'', 'log: no wake-up or prune WARNING from the worker, no worker restarted');

$node->stop;
done_testing();
