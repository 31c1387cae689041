-- (e) the write floor has chat_assign's tables: the same loader as (a).
\ir load_a.sql
