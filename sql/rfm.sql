-- RFM (recency, frequency, monetary value): segment_rfm builds a view of one row per
-- customer with the three measures, quintile scores 1..5 and a named segment looked up
-- in a map of (r, f) cells kept in segment.rfm_maps. Pure SQL/PL/pgSQL, no Rust.
--
-- Security (as for the catalog, sql/catalog.sql):
-- * segment.rfm_maps: every role reads every map; a map's rows belong to the role that
--   inserted them (`owner`), and only members of that role may change or delete them,
--   or add rows to that map (row-level security). The shipped map 'standard' belongs to the installing role.
-- * segment_rfm is SECURITY INVOKER: the view it creates is the caller's, made with the
--   caller's rights. It runs with search_path = pg_catalog, pg_temp, and names every
--   object of its own qualified; the view's text is parsed inside it, so the view keeps
--   the pg_catalog functions and operators it resolved then, whatever the search_path
--   of those who query it later. Identifiers are quoted with format('%I'), the
--   transactions relation is its regclass's own (quoted, qualified) text.

CREATE TABLE segment.rfm_maps (
    map     text NOT NULL,
    r       int NOT NULL CHECK (r BETWEEN 1 AND 5),
    f       int NOT NULL CHECK (f BETWEEN 1 AND 5),
    segment text NOT NULL,
    -- quote_ident: current_user::regrole would fold "ProbeUpper" to probeupper
    owner   regrole NOT NULL DEFAULT pg_catalog.quote_ident(CURRENT_USER::text)::regrole,
    PRIMARY KEY (map, r, f)
);
COMMENT ON TABLE segment.rfm_maps IS
    'RFM segment maps for segment_rfm: the segment name of each (r, f) score cell of a map; a usable map has all 25 cells. Readable by everyone; rows are changed only by members of their owner role. The map ''standard'' ships with pg_segment';

ALTER TABLE segment.rfm_maps ENABLE ROW LEVEL SECURITY;
CREATE POLICY read ON segment.rfm_maps FOR SELECT USING (true);
-- Whether map `map` has rows whose owner `who` is not a member of. SECURITY DEFINER only
-- so that the write policy below can read the table without its own policies recursing;
-- it reads nothing else and returns one boolean.
CREATE FUNCTION segment._rfm_map_taken(map text, who name) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM segment.rfm_maps o
                     WHERE o.map OPERATOR(pg_catalog.=) $1
                       AND NOT pg_catalog.pg_has_role($2, o.owner, 'MEMBER')) $$;
COMMENT ON FUNCTION segment._rfm_map_taken(text, name) IS 'internal: true when the map has rows of a role "who" is not a member of';

-- A row is written only by a member of its owner, and only into a map no other role
-- has rows in: nobody adds cells to, or squats the name of, another role's map.
CREATE POLICY write ON segment.rfm_maps FOR ALL
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
    WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER')
                AND NOT segment._rfm_map_taken(map, CURRENT_USER));
GRANT SELECT, INSERT, UPDATE, DELETE ON segment.rfm_maps TO PUBLIC;

-- The shipped map, owned by the installing role. Users' maps are dumped by pg_dump;
-- 'standard' is not: CREATE EXTENSION makes it again on restore.
INSERT INTO segment.rfm_maps (map, r, f, segment)
SELECT 'standard', r.r, f.f, cell.segment
FROM (VALUES (1, 2, 1, 2, 'Hibernating'),
             (1, 2, 3, 4, 'At risk'),
             (1, 2, 5, 5, 'Can''t lose them'),
             (3, 3, 1, 2, 'About to sleep'),
             (3, 3, 3, 3, 'Need attention'),
             (3, 4, 4, 5, 'Loyal customers'),
             (4, 4, 1, 1, 'Promising'),
             (4, 5, 2, 3, 'Potential loyalists'),
             (5, 5, 1, 1, 'New customers'),
             (5, 5, 4, 5, 'Champions')) AS cell (r_from, r_to, f_from, f_to, segment)
CROSS JOIN LATERAL pg_catalog.generate_series(cell.r_from, cell.r_to) AS r (r)
CROSS JOIN LATERAL pg_catalog.generate_series(cell.f_from, cell.f_to) AS f (f);
SELECT pg_catalog.pg_extension_config_dump('segment.rfm_maps', 'WHERE map <> ''standard''');

CREATE FUNCTION segment_rfm(transactions regclass, customer_column name, date_column name,
                            amount_column name, as_of date DEFAULT NULL,
                            map text DEFAULT 'standard', view_name text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $segment_rfm$
DECLARE
    null_arg        text;
    rel_name        name;
    rel_nsp         oid;
    rel_kind        "char";
    rel_temp        boolean;
    rel_text        text := transactions::text;   -- quoted, schema-qualified when needed
    columns         text;
    cust_type       oid;
    date_type       oid;
    amount_type     oid;
    date_base       oid;
    amount_base     oid;
    maps            text;
    missing         text;
    parts           text[];
    view_nsp        oid;
    view_rel        name;
    temp_view       boolean;
    target          text;    -- the view's name as written in CREATE VIEW
    shown           text;    -- ... and in messages
    as_of_sql       text;
    filter_sql      text := '';
    view_oid        oid;
BEGIN
    null_arg := CASE WHEN transactions IS NULL THEN 'transactions'
                     WHEN customer_column IS NULL THEN 'customer_column'
                     WHEN date_column IS NULL THEN 'date_column'
                     WHEN amount_column IS NULL THEN 'amount_column'
                     WHEN segment_rfm.map IS NULL THEN 'map' END;
    IF null_arg IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22004',
            MESSAGE = pg_catalog.format('segment_rfm: %s must not be NULL', null_arg),
            HINT = 'Only as_of (NULL: the day after the last transaction) and view_name (NULL: <transactions>_rfm) may be NULL; map defaults to ''standard''.';
    END IF;

    SELECT c.relname, c.relnamespace, c.relkind, c.relpersistence = 't'
      INTO rel_name, rel_nsp, rel_kind, rel_temp
    FROM pg_catalog.pg_class c WHERE c.oid = transactions;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = '42P01',
            MESSAGE = pg_catalog.format('segment_rfm: relation with OID %s does not exist', transactions::oid),
            HINT = 'Pass the table or view of transactions by name, for example ''shop.orders''.';
    END IF;
    IF rel_kind NOT IN ('r', 'p', 'v', 'm', 'f') THEN
        RAISE EXCEPTION USING ERRCODE = '42809',
            MESSAGE = pg_catalog.format('segment_rfm: %s is not a table, view, materialized view or foreign table', rel_text),
            HINT = 'Pass the relation that holds one row per transaction.';
    END IF;

    -- The three columns: they exist, and have usable types.
    SELECT pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = customer_column),
           pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = date_column),
           pg_catalog.max(a.atttypid) FILTER (WHERE a.attname = amount_column),
           pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
      INTO cust_type, date_type, amount_type, columns
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = transactions AND a.attnum > 0 AND NOT a.attisdropped;
    null_arg := CASE WHEN cust_type IS NULL THEN 'customer_column'
                     WHEN date_type IS NULL THEN 'date_column'
                     WHEN amount_type IS NULL THEN 'amount_column' END;
    IF null_arg IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '42703',
            MESSAGE = pg_catalog.format('segment_rfm: column "%s" (%s) does not exist in %s',
                CASE null_arg WHEN 'customer_column' THEN customer_column
                              WHEN 'date_column' THEN date_column ELSE amount_column END,
                null_arg, rel_text),
            HINT = pg_catalog.format('The columns of %s are: %s.', rel_text, COALESCE(columns, '(none)'));
    END IF;
    IF customer_column IN ('recency_days', 'frequency', 'monetary', 'r', 'f', 'm', 'cell', 'segment') THEN
        RAISE EXCEPTION USING ERRCODE = '42701',
            MESSAGE = pg_catalog.format('segment_rfm: customer column "%s" has the name of a column the view adds', customer_column),
            HINT = 'The view adds recency_days, frequency, monetary, r, f, m, cell and segment: rename the customer column in a view over the transactions and pass that view.';
    END IF;
    -- Domains count as their base types.
    date_base := date_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid = date_base) = 'd' LOOP
        SELECT t.typbasetype INTO date_base FROM pg_catalog.pg_type t WHERE t.oid = date_base;
    END LOOP;
    amount_base := amount_type;
    WHILE (SELECT t.typtype FROM pg_catalog.pg_type t WHERE t.oid = amount_base) = 'd' LOOP
        SELECT t.typbasetype INTO amount_base FROM pg_catalog.pg_type t WHERE t.oid = amount_base;
    END LOOP;
    IF date_base NOT IN ('pg_catalog.date'::regtype, 'pg_catalog.timestamp'::regtype,
                         'pg_catalog.timestamptz'::regtype) THEN
        RAISE EXCEPTION USING ERRCODE = '42804',
            MESSAGE = pg_catalog.format('segment_rfm: date column "%s" is of type %s, not date, timestamp or timestamp with time zone',
                date_column, pg_catalog.format_type(date_type, NULL)),
            HINT = 'Pass a view over the transactions that casts the column to date.';
    END IF;
    IF amount_base NOT IN ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype,
                           'pg_catalog.int8'::regtype, 'pg_catalog.numeric'::regtype,
                           'pg_catalog.float4'::regtype, 'pg_catalog.float8'::regtype) THEN
        RAISE EXCEPTION USING ERRCODE = '42804',
            MESSAGE = pg_catalog.format('segment_rfm: amount column "%s" is of type %s, not a number',
                amount_column, pg_catalog.format_type(amount_type, NULL)),
            HINT = 'The amount must be smallint, integer, bigint, numeric, real or double precision: pass a view over the transactions that casts it to numeric.';
    END IF;
    IF as_of IS NOT NULL AND NOT pg_catalog.isfinite(as_of) THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: as_of must be a finite date, not %s', as_of),
            HINT = 'Pass a day (transactions before it count), or NULL for the day after the last transaction.';
    END IF;

    -- The map: known, and complete over the 25 (r, f) cells.
    IF NOT EXISTS (SELECT 1 FROM segment.rfm_maps m WHERE m.map = segment_rfm.map) THEN
        SELECT pg_catalog.string_agg(pg_catalog.quote_literal(k.map), ', ' ORDER BY k.map) INTO maps
        FROM (SELECT DISTINCT m.map FROM segment.rfm_maps m) k;
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: map %L does not exist', segment_rfm.map),
            HINT = pg_catalog.format('The maps in segment.rfm_maps are: %s.', COALESCE(maps, '(none)'));
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('(%s,%s)', g_r.r, g_f.f), ', ' ORDER BY g_r.r, g_f.f)
      INTO missing
    FROM pg_catalog.generate_series(1, 5) AS g_r (r)
    CROSS JOIN pg_catalog.generate_series(1, 5) AS g_f (f)
    WHERE NOT EXISTS (SELECT 1 FROM segment.rfm_maps m
                      WHERE m.map = segment_rfm.map AND m.r = g_r.r AND m.f = g_f.f);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = pg_catalog.format('segment_rfm: map %L has no segment for the (r,f) cells %s', segment_rfm.map, missing),
            HINT = 'A map names the segment of each of the 25 cells r = 1..5, f = 1..5: insert the missing rows into segment.rfm_maps.';
    END IF;

    -- The view's name: view_name (name or schema.name), else <relname>_rfm (the
    -- relname shortened so that the suffix fits in an identifier, 63 bytes); an
    -- unqualified name goes to the transactions' schema.
    IF view_name IS NULL THEN
        parts := ARRAY[rel_name::text];
        WHILE pg_catalog.octet_length(parts[1] || '_rfm')
              > pg_catalog.octet_length(pg_catalog.repeat('x', 1000)::name::text) LOOP
            parts[1] := pg_catalog.left(parts[1], -1);
        END LOOP;
        parts[1] := parts[1] || '_rfm';
    ELSE
        BEGIN
            parts := pg_catalog.parse_ident(view_name);
        EXCEPTION WHEN invalid_parameter_value THEN
            RAISE EXCEPTION USING ERRCODE = '42602',
                MESSAGE = pg_catalog.format('segment_rfm: view_name %L is not a valid name', view_name),
                HINT = 'Write name or schema.name; double-quote a part with capitals, spaces or dots: view_name => ''shop."RFM view"''.';
        END;
    END IF;
    IF pg_catalog.array_length(parts, 1) = 1 THEN
        view_nsp := rel_nsp;
    ELSIF pg_catalog.array_length(parts, 1) = 2 THEN
        IF parts[1] = 'pg_temp' THEN
            view_nsp := pg_catalog.pg_my_temp_schema();   -- 0 until a temporary object is made
        ELSE
            SELECT n.oid INTO view_nsp FROM pg_catalog.pg_namespace n WHERE n.nspname = parts[1];
            IF NOT FOUND THEN
                RAISE EXCEPTION USING ERRCODE = '3F000',
                    MESSAGE = pg_catalog.format('segment_rfm: schema "%s" does not exist', parts[1]),
                    HINT = 'Create the schema first, or pass view_name without a schema (the view then goes to the schema of the transactions).';
            END IF;
        END IF;
    ELSE
        RAISE EXCEPTION USING ERRCODE = '42602',
            MESSAGE = pg_catalog.format('segment_rfm: view_name %L is not a valid name', view_name),
            HINT = 'Write name or schema.name; double-quote a part with capitals, spaces or dots: view_name => ''shop."RFM view"''.';
    END IF;
    view_rel := parts[pg_catalog.array_length(parts, 1)]::name;
    temp_view := (pg_catalog.array_length(parts, 1) = 2 AND parts[1] = 'pg_temp')
                 OR (view_nsp <> 0 AND view_nsp = pg_catalog.pg_my_temp_schema());
    IF temp_view THEN
        target := pg_catalog.format('%I', view_rel);
        shown := pg_catalog.format('pg_temp.%I', view_rel);
    ELSE
        target := pg_catalog.format('%I.%I', (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = view_nsp), view_rel);
        shown := target;
    END IF;
    IF rel_temp AND NOT temp_view THEN
        RAISE EXCEPTION USING ERRCODE = '42P16',
            MESSAGE = pg_catalog.format('segment_rfm: the view of the temporary relation %s must be temporary, not %s', rel_text, shown),
            HINT = pg_catalog.format('Pass view_name => %L, or no view_name.', 'pg_temp.' || view_rel);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relnamespace = view_nsp AND c.relname = view_rel) THEN
        RAISE EXCEPTION USING ERRCODE = '42P07',
            MESSAGE = pg_catalog.format('segment_rfm: relation %s already exists', shown),
            HINT = pg_catalog.format('Pass another name, view_name => %L, or drop %s first.',
                CASE WHEN temp_view THEN 'pg_temp.' ELSE '' END || view_rel || '_2', shown);
    END IF;

    -- as of the start of day as_of: transactions strictly before it count. NULL: the day
    -- after the last transaction, computed whenever the view is read.
    IF as_of IS NULL THEN
        as_of_sql := '(pg_catalog.max(p.last_day) OVER () + 1)';
    ELSE
        as_of_sql := pg_catalog.format('%L::pg_catalog.date', as_of);
        -- a timestamptz's day is the session's (TimeZone); date and timestamp compare
        -- as they are, so an index on the column serves the filter
        filter_sql := CASE WHEN date_base = 'pg_catalog.timestamptz'::regtype
                           THEN pg_catalog.format(' AND (t.%I)::pg_catalog.date < %s', date_column, as_of_sql)
                           ELSE pg_catalog.format(' AND t.%I < %s', date_column, as_of_sql) END;
    END IF;

    EXECUTE pg_catalog.format($view$
CREATE %1$s VIEW %2$s AS
WITH per_customer AS (
    SELECT t.%3$I AS customer,
           pg_catalog.max((t.%4$I)::pg_catalog.date) AS last_day,
           pg_catalog.count(*) AS frequency,
           COALESCE(pg_catalog.sum((t.%5$I)::pg_catalog.numeric), 0::pg_catalog.numeric) AS monetary
    FROM %6$s t
    WHERE t.%3$I IS NOT NULL AND t.%4$I IS NOT NULL AND pg_catalog.isfinite(t.%4$I)%7$s
    GROUP BY t.%3$I
), measured AS (
    SELECT p.customer, (%8$s - p.last_day) AS recency_days, p.frequency, p.monetary
    FROM per_customer p
), scored AS (
    SELECT m.customer, m.recency_days, m.frequency, m.monetary,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.recency_days DESC) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS r,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.frequency) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS f,
           ((5 * (pg_catalog.rank() OVER (ORDER BY m.monetary) - 1))
              / pg_catalog.count(*) OVER () + 1)::pg_catalog.int4 AS m
    FROM measured m
)
SELECT s.customer AS %3$I, s.recency_days, s.frequency, s.monetary, s.r, s.f, s.m,
       s.r::pg_catalog.text || s.f::pg_catalog.text || s.m::pg_catalog.text AS cell,
       cells.segment
FROM scored s
LEFT JOIN segment.rfm_maps cells ON cells.map = %9$L AND cells.r = s.r AND cells.f = s.f
$view$,
        CASE WHEN temp_view THEN 'TEMPORARY' ELSE '' END, target, customer_column, date_column,
        amount_column, rel_text, filter_sql, as_of_sql, segment_rfm.map);

    SELECT c.oid INTO view_oid FROM pg_catalog.pg_class c
    WHERE c.relname = view_rel
      AND c.relnamespace = CASE WHEN temp_view THEN pg_catalog.pg_my_temp_schema() ELSE view_nsp END;
    EXECUTE pg_catalog.format('COMMENT ON VIEW %s IS %L', view_oid::regclass,
        pg_catalog.format('RFM of %s by %I as of %s (segment_rfm: dates %I, amounts %I, map %L)',
            rel_text, customer_column,
            COALESCE(as_of::text, 'the day after the last transaction'),
            date_column, amount_column, segment_rfm.map));
    RETURN view_oid::regclass;
END
$segment_rfm$;

COMMENT ON FUNCTION segment_rfm(regclass, name, name, name, date, text, text) IS
$$Create a view of recency, frequency and monetary value per customer of a transactions relation, with quintile scores and a named segment; returns the view.
Arguments: transactions (table or view, one row per transaction), customer_column (any type the view can group by), date_column (date, timestamp or timestamp with time zone), amount_column (smallint, integer, bigint, numeric, real or double precision); as_of (default NULL), map (default 'standard', a map in segment.rfm_maps), view_name (default NULL: <transactions>_rfm in the transactions' schema; an unqualified name also goes to that schema; schema.name accepted).
As of: the view is as of the start of day as_of: only transactions dated strictly before as_of count (a customer whose purchases are all on or after as_of is not in the view), and recency_days = as_of - the customer's last day. The given as_of is fixed in the view. as_of NULL: the day after the last transaction in the relation, computed each time the view is read, so the view always covers every transaction. Dates are taken with ::date; for timestamp with time zone the day is the one in the session's TimeZone when the view is read. Rows with a NULL customer or a NULL or infinite date are ignored.
Columns: the customer column (its name and type), recency_days int, frequency bigint (transactions), monetary numeric (sum of the amounts: refunds, i.e. negative amounts, reduce it; NULL amounts are left out of the sum but the transaction counts for recency and frequency; 0 when all are NULL), r, f, m int 1..5, cell text (r, f and m, e.g. '543'), segment text (the map's name for (r, f), read from segment.rfm_maps whenever the view is read: NULL if the cell has since been removed from the map).
Scores: for a measure v over the n customers in the view, score = floor(5 * (rank_min - 1) / n) + 1 with rank_min = rank() OVER (ORDER BY v), 1-based, equal values sharing the lowest rank, so equal values share a score; f ranks frequency ascending, m monetary ascending, r recency_days descending (recent customers score high).
The view may be empty (no transaction before as_of). It belongs to the caller and reads the transactions with its owner's rights, like any view; it depends on segment.rfm_maps.
Errors: 22004 a NULL transactions, customer_column, date_column, amount_column or map; 42P01 no such relation; 42809 a relation that is not a table, view, materialized view or foreign table; 42703 a column not in the relation; 42701 a customer column named like a column the view adds; 42804 a date or amount column of another type; 22023 an unknown map, an incomplete map (fewer than the 25 (r, f) cells), an infinite as_of; 42602 an invalid view_name; 3F000 an unknown schema in view_name; 42P16 a view of a temporary relation outside pg_temp (the view of a temporary relation is temporary); 42P07 a relation already named like the view.$$;
