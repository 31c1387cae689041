# Upgrades and DROP EXTENSION: the released scripts are unchanged (sql/released/SHA256SUMS);
# an upgrade from every older released version keeps the data and the grants, fills the
# service metrics' columns from the history and ends in the schema of a fresh install;
# DROP EXTENSION leaves nothing; in public and in another schema.
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);
use File::Basename qw(basename);
use PostgreSQL::Test::Utils;
use Test::More;
use ChatAssign;

my $node = node_with('upgrade');

# ---------------------------------------------------------------- the released files
my %listed;
for my $line (split /\n/, slurp_file(src_file('sql/released/SHA256SUMS')))
{
	my ($sum, $file) = $line =~ /^([0-9a-f]{64}) [ *](.+)$/ or next;
	$listed{$file} = $sum;
}
my @changed = grep {
	!-f src_file($_) || sha256_hex(slurp_file(src_file($_))) ne $listed{$_}
} sort keys %listed;
is(join(' ', @changed), '',
	'sql/released/SHA256SUMS: every released script has its recorded checksum');
my ($current) = slurp_file(src_file('Cargo.toml')) =~ /^\[package\][^\[]*?^version\s*=\s*"([^"]+)"/ms;
# A version is released when its install script is archived in sql/released; until then
# the upgrade script into it may still change and is not listed yet.
my @missing = grep {
	my $f = $_;
	!exists $listed{$f}
	  && !($f =~ /^sql\/chat_assign--.*--\Q$current\E\.sql$/
		&& !-f src_file("sql/released/chat_assign--$current.sql"))
} map { s/^\Q$ENV{CHAT_ASSIGN_SRC}\E\///r }
  (glob(src_file('sql/chat_assign--*--*.sql')), glob(src_file('sql/released/chat_assign--*.sql')));
is(join(' ', @missing), '',
	"every released sql/chat_assign--*--*.sql and sql/released/chat_assign--*.sql is listed in SHA256SUMS (the upgrade into unreleased $current excepted)");
is( q_($node, 'postgres', "SELECT default_version FROM pg_available_extensions WHERE name = 'chat_assign'"),
	$current, "the installed default_version is Cargo.toml's version ($current)");

sub version_cmp
{
	my @a = split /\./, $_[0];
	my @b = split /\./, $_[1];
	return ($a[0] <=> $b[0]) || ($a[1] <=> $b[1]) || ($a[2] <=> $b[2]);
}
my @older = sort { version_cmp($a, $b) } grep { version_cmp($_, $current) < 0 }
  map { basename($_) =~ /^chat_assign--([0-9.]+)\.sql$/ ? $1 : () }
  glob(src_file('sql/released/chat_assign--*.sql'));
ok(@older > 0, "released versions older than $current to upgrade from: @older");

# ---------------------------------------------------------------- helpers
# The description of the extension's objects in DB (an extension in SCHEMA).
sub catalog
{
	my ($db, $schema) = @_;
	local $ENV{PGOPTIONS} = "-c search_path=$schema";
	return q_($node, $db, sql_file('catalog.sql'));
}
# tests/tap/sql/table_md5.sql for DB, only the columns and tables every release has.
sub md5_every_release
{
	return q_($node, $_[0], "\\set every_release on\n" . sql_file('table_md5.sql'));
}
sub db_objects
{
	local $ENV{PGOPTIONS} = '';
	return q_($node, $_[0], sql_file('db_objects.sql'));
}

# DROP EXTENSION, then the database holds what it held before CREATE EXTENSION (BEFORE:
# db_objects then).
sub drop_leaves_nothing
{
	my ($label, $db, $schema, $before) = @_;
	my $ext = q_($node, $db, "SELECT oid FROM pg_extension WHERE extname = 'chat_assign'");
	is(q_err($node, $db, 'DROP EXTENSION chat_assign'), '', "$label: DROP EXTENSION chat_assign");
	is(db_objects($db), $before,
		"$label: after DROP EXTENSION the database holds what it held before CREATE EXTENSION (tests/tap/sql/db_objects.sql)");
	is( q_($node, $db, qq{
			SELECT (SELECT count(*) FROM pg_depend WHERE refobjid = $ext OR objid = $ext),
			       (SELECT count(*) FROM pg_class WHERE relnamespace = '$schema'::regnamespace)
			       + (SELECT count(*) FROM pg_proc WHERE pronamespace = '$schema'::regnamespace)
			       + (SELECT count(*) FROM pg_type WHERE typnamespace = '$schema'::regnamespace)}),
		'0|0',
		"$label: no pg_depend row refers to the dropped extension, no relation, function or type left in $schema");
}

# Install V into SCHEMA of a new database, fill it, update, compare with the fresh install
# of the current version (database ops_fresh_SCHEMA), then drop.
sub upgrade_from
{
	my ($v, $schema) = @_;
	my $db = "ops_up_${v}_$schema" =~ s/\./_/gr;
	my $label = "$v -> $current in $schema";
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE SCHEMA $schema") unless $schema eq 'public';
	my $before = db_objects($db);
	local $ENV{PGOPTIONS} = "-c search_path=$schema";
	is(q_err($node, $db, "CREATE EXTENSION chat_assign VERSION '$v' SCHEMA $schema"), '',
		"$label: CREATE EXTENSION chat_assign VERSION '$v' SCHEMA $schema (the released script)");
	$node->safe_psql($db, sql_file('fill_direct.sql'));
	$node->safe_psql($db, q{
		DO $$ BEGIN CREATE ROLE ops_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
		GRANT SELECT ON operator_activity TO ops_reader;
		DO $$ BEGIN CREATE ROLE ops_writer; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
		GRANT SELECT, INSERT, UPDATE, DELETE ON operators, chats, messages, chat_assignments TO ops_writer;
		GRANT UPDATE (priority) ON chats TO ops_writer;
		GRANT EXECUTE ON FUNCTION start_chat(uuid, text), operator_send_message(uuid, uuid, text) TO ops_reader});
	my $md5 = md5_every_release($db);
	my $early = q_err($node, $db, "\\set VERBOSITY verbose\nSELECT create_operator('too early')");
	is(join(' ', $early =~ /(0A000|ALTER EXTENSION chat_assign UPDATE)/g),
		'0A000 ALTER EXTENSION chat_assign UPDATE',
		"$label: before the update, a call refuses with 0A000 and names the command to run");
	is(q_err($node, $db, 'ALTER EXTENSION chat_assign UPDATE'), '', "$label: ALTER EXTENSION chat_assign UPDATE");
	is(q_($node, $db, "SELECT extversion FROM pg_extension WHERE extname = 'chat_assign'"),
		$current, "$label: the installed version is $current");
	is(md5_every_release($db), $md5,
		"$label: every row of every table unchanged (md5 per table, and the monitoring totals)");
	is( q_($node, $db, q{
			SELECT (SELECT string_agg(DISTINCT status, ',') FROM operators),
			       (SELECT count(*) FROM chats WHERE team_id IS NOT NULL),
			       (SELECT count(*) FROM teams) + (SELECT count(*) FROM team_members)
			       + (SELECT count(*) FROM chat_transfers)}),
		'online|0|0', "$label: every operator is online, no chat is in a team, no team, no transfer");
	invariants_hold($node, $db, $label);
	# The service metrics' columns, filled by the update from the history: when each chat was
	# first assigned (its first assignment) and first answered (its first operator message).
	is( q_($node, $db, q{
			SELECT count(*) FILTER (WHERE c.first_assigned_at IS NOT DISTINCT FROM h.assigned
			                          AND c.first_response_at IS NOT DISTINCT FROM h.answered
			                          AND c.idle_releases = h.idle),
			       count(h.assigned), count(h.answered), sum(h.idle), count(*)
			FROM chats c CROSS JOIN LATERAL (
			  SELECT (SELECT min(a.assigned_at) FROM chat_assignments a WHERE a.chat_id = c.id) AS assigned,
			         (SELECT min(m.created_at) FROM messages m
			           WHERE m.chat_id = c.id AND m.sender_type = 'operator') AS answered,
			         (SELECT count(*) FROM chat_assignments a
			           WHERE a.chat_id = c.id AND a.release_reason = 'idle_timeout') AS idle) AS h}),
		'8|8|2|1|8',
		"$label: chats.first_assigned_at, first_response_at and idle_releases equal the history (min assigned_at of the chat's assignments, min created_at of its operator messages, its idle releases) for all 8 chats (8 assigned, 2 answered, 1 idle release)");
	# fill_direct.sql's times are offsets from one now(): the chats started 1 hour before, the
	# operators answered at that now(), the first assignments 1 to 30 minutes before it.
	is( q_($node, $db, q{
			SELECT scope, team_name, chats_started, round(first_response_p50::numeric, 3),
			       round(first_response_p90::numeric, 3), round(wait_to_assignment_p50::numeric, 3),
			       round(wait_to_assignment_p90::numeric, 3), transfers, idle_releases, abandoned
			FROM get_service_metrics(now() - interval '2 hours')}),
		"all||8|3600.000|3600.000|3180.000|3498.000|0|1|0\nno_team||8|3600.000|3600.000|3180.000|3498.000|0|1|0",
		"$label: get_service_metrics answers from the history: 8 chats started, first response 3600 s, wait to assignment p50 3180 s and p90 3498 s, one idle release, none abandoned");
	is(q_($node, $db, "SELECT has_table_privilege('ops_reader', 'operator_activity', 'SELECT')"),
		't', "$label: a SELECT grant on operator_activity is kept across the update");
	$node->safe_psql($db, 'REVOKE SELECT ON operator_activity FROM ops_reader');
	is( q_($node, $db, q{
			SELECT (SELECT count(*) FROM unnest(ARRAY['operators', 'chats', 'messages', 'chat_assignments']) t,
			            unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) p
			        WHERE has_table_privilege('ops_writer', t, p)),
			       has_table_privilege('ops_writer', 'chats', 'SELECT'),
			       has_column_privilege('ops_writer', 'chats', 'priority', 'UPDATE')}),
		'0|t|t',
		"$label: table-level INSERT/UPDATE/DELETE grants (0.1.0 needed them) are revoked; SELECT and a column grant (UPDATE (priority) ON chats) are kept");
	$node->safe_psql($db, 'REVOKE ALL ON operators, chats, messages, chat_assignments FROM ops_writer');
	# 0.1.0's functions ran with their caller's rights: the update to 0.2.0 revoked every
	# EXECUTE grant on purpose. From 0.2.0 on, a grant on a function whose signature grows
	# (p_idempotency_key, then p_team_id and p_priority for start_chat) is kept.
	is( q_($node, $db, q{
			SELECT has_function_privilege('ops_reader', 'start_chat(uuid, text, text, uuid, integer)', 'EXECUTE'),
			       has_function_privilege('ops_reader', 'operator_send_message(uuid, uuid, text, text)', 'EXECUTE')}),
		$v eq '0.1.0' ? 'f|f' : 't|t',
		"$label: EXECUTE grants on start_chat and operator_send_message are on their new signatures (none from 0.1.0)");
	$node->safe_psql($db,
		'REVOKE ALL ON FUNCTION start_chat(uuid, text, text, uuid, integer), operator_send_message(uuid, uuid, text, text) FROM ops_reader');
	is(catalog($db, $schema), catalog("ops_fresh_$schema", $schema),
		"$label: the extension's objects equal a fresh install of $current (tests/tap/sql/catalog.sql)");
	works($node, $db, $label);
	drop_leaves_nothing($label, $db, $schema, $before);
}

# ---------------------------------------------------------------- each schema
for my $schema (qw(public ops_s))
{
	my $fresh = "ops_fresh_$schema";
	$node->safe_psql('postgres', "CREATE DATABASE $fresh");
	$node->safe_psql($fresh, "CREATE SCHEMA $schema") unless $schema eq 'public';
	my $before = db_objects($fresh);
	is(q_err($node, $fresh, "CREATE EXTENSION chat_assign SCHEMA $schema"), '',
		"fresh install of $current in schema $schema");
	is( q_($node, $fresh, qq{
			SELECT pg_describe_object(d.classid, d.objid, 0)
			FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'chat_assign'
			JOIN pg_identify_object(d.classid, d.objid, 0) AS i ON true
			WHERE d.deptype = 'e' AND i.schema IS DISTINCT FROM '$schema'}),
		'', "fresh install in $schema: every object the extension owns is in $schema");
	upgrade_from($_, $schema) for @older;
	# Compared with every upgrade above; dropped last.
	drop_leaves_nothing("fresh $current in $schema", $fresh, $schema, $before);
}

$node->stop;
done_testing();
