-- streamscore: MNIST_SCORER, the PL/SQL package that scores images inside Oracle.
--
-- Installed by OracleBackend.init_schema after schema.sql (with
-- PLSQL_CODE_TYPE=NATIVE), and only when this file changed: recompiling a package
-- discards its state in every running session (ORA-04068 on their next call).
-- A DBA may also run it with SQL*Plus as the streamscore user.
--
-- The forward pass mirrors the numpy reference, src/streamscore/model/reference.py,
-- step by step; the comments marked "reference:" quote the line being mirrored.
--
--   x = pixels.astype(np.float32) * np.float32(input_scale)
--   for w, b, act in zip(weights, biases, activations):
--       x = ACTIVATIONS[act](x @ w + b)
--   predicted = np.argmax(x, axis=1)
--
-- Layout (why one BLAS_GEMM per layer is the whole matrix product):
--   * a layer's weights are stored as numpy writes them: the (n_in, n_out) matrix
--     row-major. Read column-major, as UTL_NLA does by default (pack 'C'), the same
--     buffer is the n_out x n_in matrix W' (W transposed) with leading dimension n_out.
--   * a chunk of k images is stored image after image: the (k, n_in) matrix x
--     row-major, i.e. column-major the n_in x k matrix x' (one column per image).
--   * numpy's z = x @ w + b is therefore, transposed, z' = W' x' + b:
--     BLAS_GEMM('N', 'N', m => n_out, n => k, k => n_in, 1, W', lda => n_out,
--               x', ldb => n_in, 1, z', ldc => n_out)
--     with z' seeded with the bias in every column, so beta = 1 adds it for free
--     (as the 2016 notebook did with GEMV). z' column j is image j's n_out outputs,
--     which is again the row-major (k, n_out) matrix the next layer takes as x.
--
-- Weights are package state cached per (model name, version) and checked against
-- model_versions.sha256 once per batch, so a hot swap is data (a new version's
-- rows), never a recompile. UTL_NLA arrays hold at most 1,000,000 entries, so a
-- batch is scored in chunks of at most 1,000,000 / (widest layer) images.

CREATE OR REPLACE PACKAGE mnist_scorer AUTHID DEFINER AS

  -- The version of this package. init_schema compiles the file only when this number is
  -- higher than the installed package's (read from USER_SOURCE), so during a rolling
  -- upgrade old consumers never compile an old package over a new one (every compile
  -- discards the package state of all sessions: ORA-04068). Raise it with every change.
  c_package_version CONSTANT PLS_INTEGER := 2;

  -- Score the images whose ids the caller put in mnist_batch_ids (a global temporary
  -- table: this transaction's batch) and that have no prediction yet for
  -- (p_model_name, p_model_version, p_role); insert their predictions.
  -- p_model_version NULL means the version in active_models.
  -- Commits nothing: the caller commits the batch (or rolls back to store nothing).
  -- Raises ORA-20001 when the model is not installed, ORA-20002..20005 when its
  -- rows are inconsistent.
  PROCEDURE score_staged(
    p_model_name    IN VARCHAR2,
    p_model_version IN NUMBER,
    p_role          IN VARCHAR2 DEFAULT 'champion');

  -- Version 1's entry point, kept so that consumers from before version 2 keep working
  -- during a rolling upgrade: the same, for the images whose batch_id is p_batch_id
  -- (those consumers MERGE each image into their batch). Remove once none run.
  PROCEDURE score_batch(
    p_batch_id      IN VARCHAR2,
    p_model_name    IN VARCHAR2,
    p_model_version IN NUMBER,
    p_role          IN VARCHAR2 DEFAULT 'champion');

  -- How many times this session read a model's weights from the tables
  -- (tests and monitoring: it must not grow while the same version serves).
  FUNCTION cache_loads RETURN PLS_INTEGER;

  -- Debug timing: with p_enabled = 1, score_batch adds the CPU time of each phase
  -- (DBMS_UTILITY.GET_CPU_TIME, hundredths of a second) to per-session counters, which
  -- start again from zero; 0 switches it off. timings returns them as
  -- 'batches=3 images=1500 load=0 fetch=1 decode=4 gemm=21 activate=3 store=2'.
  PROCEDURE set_timing(p_enabled IN PLS_INTEGER);
  FUNCTION timings RETURN VARCHAR2;

  -- Retention: delete the images inserted more than p_older_than_s seconds ago and
  -- their predictions, p_rows_per_commit images at a time, COMMITTING after each
  -- chunk (bounded undo; call it outside a batch, e.g. from a scheduler job).
  -- p_images / p_predictions return how many rows went.
  PROCEDURE purge(
    p_older_than_s    IN  NUMBER,
    p_images          OUT NUMBER,
    p_predictions     OUT NUMBER,
    p_rows_per_commit IN  PLS_INTEGER DEFAULT 10000);

END mnist_scorer;
/

CREATE OR REPLACE PACKAGE BODY mnist_scorer AS

  c_inputs      CONSTANT PLS_INTEGER := 784;      -- 28 x 28 pixels
  c_classes     CONSTANT PLS_INTEGER := 10;       -- digits 0..9
  c_max_entries CONSTANT PLS_INTEGER := 1000000;  -- UTL_NLA_ARRAY_FLT is VARRAY(1000000)
  c_max_chunk   CONSTANT PLS_INTEGER := 500;      -- images per GEMM (memory bound)
  c_max_cached  CONSTANT PLS_INTEGER := 4;        -- models kept in package state
  c_lob_chunk   CONSTANT PLS_INTEGER := 32000;    -- bytes per DBMS_LOB.SUBSTR (x 4, <= 32767)
  c_row_bytes   CONSTANT PLS_INTEGER := 28;       -- pixels per image row
  c_row_words   CONSTANT PLS_INTEGER := 7;        -- 4-byte words per image row
  c_one         CONSTANT BINARY_FLOAT := 1;
  c_zero_row    CONSTANT RAW(28) := UTL_RAW.COPIES(HEXTORAW('00'), 28);

  TYPE t_layer IS RECORD (
    n_in       PLS_INTEGER,
    n_out      PLS_INTEGER,
    activation VARCHAR2(16),
    w          UTL_NLA_ARRAY_FLT,   -- (n_in, n_out) row-major = W' column-major, lda n_out
    b          UTL_NLA_ARRAY_FLT);  -- n_out biases
  TYPE t_layers IS TABLE OF t_layer INDEX BY PLS_INTEGER;
  -- pixel byte 0..255 -> its scaled float32 input, computed once per model version
  TYPE t_pixel_values IS TABLE OF BINARY_FLOAT INDEX BY PLS_INTEGER;
  TYPE t_model IS RECORD (
    sha256      VARCHAR2(64),
    input_scale BINARY_FLOAT,
    pixel_value t_pixel_values,     -- reference: np.float32(p) * np.float32(input_scale)
    widest      PLS_INTEGER,        -- largest of 784 and every n_out
    last_used   PLS_INTEGER,        -- g_clock when a batch last used it (LRU eviction)
    layers      t_layers);
  TYPE t_models IS TABLE OF t_model INDEX BY VARCHAR2(200);

  TYPE t_ids       IS TABLE OF mnist_images.image_id%TYPE INDEX BY PLS_INTEGER;
  TYPE t_pixels    IS TABLE OF mnist_images.pixels%TYPE INDEX BY PLS_INTEGER;
  TYPE t_predicted IS TABLE OF mnist_predictions.predicted%TYPE INDEX BY PLS_INTEGER;
  TYPE t_probs     IS TABLE OF mnist_predictions.probabilities%TYPE INDEX BY PLS_INTEGER;
  TYPE t_cpu_times IS TABLE OF NUMBER INDEX BY VARCHAR2(16);

  -- Package state (one copy per database session, i.e. per consumer connection).
  g_models      t_models;           -- 'name:version' -> weights
  g_cache_loads PLS_INTEGER := 0;
  g_clock       PLS_INTEGER := 0;   -- counts ensure_loaded calls (LRU order of g_models)
  g_zeros       UTL_NLA_ARRAY_FLT;  -- c_inputs * c_max_chunk zeros, built on first use
  g_timing      BOOLEAN := FALSE;   -- set_timing(1): count CPU time per phase
  g_cpu         t_cpu_times;        -- phase -> hundredths of a second (and the counts)

  FUNCTION cache_loads RETURN PLS_INTEGER IS
  BEGIN
    RETURN g_cache_loads;
  END cache_loads;

  PROCEDURE set_timing(p_enabled IN PLS_INTEGER) IS
  BEGIN
    g_timing := p_enabled = 1;
    g_cpu.DELETE;
  END set_timing;

  FUNCTION timings RETURN VARCHAR2 IS
    l_text  VARCHAR2(400);
    l_phase VARCHAR2(16);
  BEGIN
    FOR i IN 1 .. 8 LOOP
      l_phase := CASE i WHEN 1 THEN 'batches' WHEN 2 THEN 'images' WHEN 3 THEN 'load'
                        WHEN 4 THEN 'fetch' WHEN 5 THEN 'decode' WHEN 6 THEN 'gemm'
                        WHEN 7 THEN 'activate' ELSE 'store' END;
      l_text := l_text || CASE WHEN i > 1 THEN ' ' END || l_phase || '='
        || TO_CHAR(CASE WHEN g_cpu.EXISTS(l_phase) THEN g_cpu(l_phase) ELSE 0 END);
    END LOOP;
    RETURN l_text;
  END timings;

  -- Debug timing: add p_amount to counter p_phase (only while set_timing(1) is on).
  PROCEDURE count_up(p_phase VARCHAR2, p_amount NUMBER) IS
  BEGIN
    IF g_cpu.EXISTS(p_phase) THEN
      g_cpu(p_phase) := g_cpu(p_phase) + p_amount;
    ELSE
      g_cpu(p_phase) := p_amount;
    END IF;
  END count_up;

  -- Debug timing: charge the CPU time since p_since to p_phase and restart the clock.
  PROCEDURE tick(p_phase VARCHAR2, p_since IN OUT NUMBER) IS
    l_now NUMBER;
  BEGIN
    IF g_timing THEN
      l_now := DBMS_UTILITY.GET_CPU_TIME;
      count_up(p_phase, l_now - p_since);
      p_since := l_now;
    END IF;
  END tick;

  FUNCTION cpu_now RETURN NUMBER IS
  BEGIN
    RETURN CASE WHEN g_timing THEN DBMS_UTILITY.GET_CPU_TIME ELSE 0 END;
  END cpu_now;

  -- Milliseconds since 1970-01-01 UTC (the scored_at of the wire format).
  FUNCTION epoch_ms RETURN NUMBER IS
    l_since INTERVAL DAY(9) TO SECOND(6) :=
      SYS_EXTRACT_UTC(SYSTIMESTAMP) - TIMESTAMP '1970-01-01 00:00:00';
  BEGIN
    RETURN EXTRACT(DAY FROM l_since) * 86400000 + EXTRACT(HOUR FROM l_since) * 3600000
         + EXTRACT(MINUTE FROM l_since) * 60000 + TRUNC(EXTRACT(SECOND FROM l_since) * 1000);
  END epoch_ms;

  -- p_count little-endian float32 values from a BLOB (numpy's '<f4' bytes).
  FUNCTION blob_to_floats(p_blob BLOB, p_count PLS_INTEGER, p_what VARCHAR2)
    RETURN UTL_NLA_ARRAY_FLT
  IS
    l_out   UTL_NLA_ARRAY_FLT := UTL_NLA_ARRAY_FLT();
    l_raw   RAW(32767);
    l_pos   PLS_INTEGER := 1;       -- 1-based byte offset into the BLOB
    l_base  PLS_INTEGER;            -- values already decoded
  BEGIN
    IF p_count > c_max_entries OR DBMS_LOB.GETLENGTH(p_blob) <> 4 * p_count THEN
      RAISE_APPLICATION_ERROR(-20002, p_what || ': expected ' || p_count
        || ' float32 values (at most 1000000), found ' || DBMS_LOB.GETLENGTH(p_blob) || ' bytes');
    END IF;
    l_out.EXTEND(p_count);
    WHILE l_pos <= 4 * p_count LOOP
      l_raw := DBMS_LOB.SUBSTR(p_blob, LEAST(c_lob_chunk, 4 * p_count - l_pos + 1), l_pos);
      l_base := (l_pos - 1) / 4;
      FOR i IN 1 .. UTL_RAW.LENGTH(l_raw) / 4 LOOP
        l_out(l_base + i) := UTL_RAW.CAST_TO_BINARY_FLOAT(
          UTL_RAW.SUBSTR(l_raw, 4 * i - 3, 4), UTL_RAW.LITTLE_ENDIAN);
      END LOOP;
      l_pos := l_pos + c_lob_chunk;
    END LOOP;
    RETURN l_out;
  END blob_to_floats;

  -- Read one model's layers from the tables and check they chain 784 -> ... -> 10.
  FUNCTION read_model(p_name VARCHAR2, p_version NUMBER, p_sha256 VARCHAR2,
                      p_layer_count PLS_INTEGER, p_input_scale BINARY_DOUBLE)
    RETURN t_model
  IS
    l_model t_model;
    l_layer t_layer;
    l_what  VARCHAR2(300);
  BEGIN
    l_model.sha256 := p_sha256;
    l_model.input_scale := TO_BINARY_FLOAT(p_input_scale);  -- reference: np.float32(input_scale)
    -- reference: pixels.astype(np.float32) * np.float32(input_scale), for every byte value
    -- once: a float32 product rounded to float32, as numpy computes it (bit-exact)
    FOR p IN 0 .. 255 LOOP
      l_model.pixel_value(p) := TO_BINARY_FLOAT(p) * l_model.input_scale;
    END LOOP;
    l_model.widest := c_inputs;
    FOR r IN (SELECT layer_no, n_in, n_out, activation, weights, biases
                FROM model_layers
               WHERE model_name = p_name AND model_version = p_version
               ORDER BY layer_no) LOOP
      l_what := p_name || ':' || p_version || ' layer ' || r.layer_no;
      IF r.layer_no <> l_model.layers.COUNT
         OR r.n_in <> CASE WHEN r.layer_no = 0 THEN c_inputs
                           ELSE l_model.layers(l_model.layers.COUNT).n_out END THEN
        RAISE_APPLICATION_ERROR(-20003, l_what || ': layers do not chain from 784 inputs');
      END IF;
      l_layer.n_in := r.n_in;
      l_layer.n_out := r.n_out;
      l_layer.activation := r.activation;
      l_layer.w := blob_to_floats(r.weights, r.n_in * r.n_out, l_what || ' weights');
      l_layer.b := blob_to_floats(r.biases, r.n_out, l_what || ' biases');
      l_model.layers(l_model.layers.COUNT + 1) := l_layer;
      l_model.widest := GREATEST(l_model.widest, r.n_out);
    END LOOP;
    IF l_model.layers.COUNT <> p_layer_count OR p_layer_count = 0
       OR l_model.layers(l_model.layers.COUNT).n_out <> c_classes THEN
      RAISE_APPLICATION_ERROR(-20003, p_name || ':' || p_version
        || ': expected ' || p_layer_count || ' layers ending in 10 outputs');
    END IF;
    RETURN l_model;
  END read_model;

  -- Drop the cached model that no batch has used for the longest time.
  PROCEDURE evict_least_recently_used IS
    l_key    VARCHAR2(200) := g_models.FIRST;
    l_oldest VARCHAR2(200) := g_models.FIRST;
  BEGIN
    WHILE l_key IS NOT NULL LOOP
      IF g_models(l_key).last_used < g_models(l_oldest).last_used THEN
        l_oldest := l_key;
      END IF;
      l_key := g_models.NEXT(l_key);
    END LOOP;
    IF l_oldest IS NOT NULL THEN
      g_models.DELETE(l_oldest);
    END IF;
  END evict_least_recently_used;

  -- Make sure (p_name, p_version) is in the package state and return its key.
  -- One indexed lookup per batch; the weights are read again only when the version
  -- is new to this session or its rows were replaced (different sha256).
  FUNCTION ensure_loaded(p_name VARCHAR2, p_version NUMBER) RETURN VARCHAR2 IS
    l_key   VARCHAR2(200) := p_name || ':' || TO_CHAR(p_version);
    l_sha   model_versions.sha256%TYPE;
    l_count model_versions.layer_count%TYPE;
    l_scale model_versions.input_scale%TYPE;
  BEGIN
    BEGIN
      SELECT sha256, layer_count, input_scale INTO l_sha, l_count, l_scale
        FROM model_versions
       WHERE model_name = p_name AND model_version = p_version;
    EXCEPTION
      WHEN NO_DATA_FOUND THEN
        RAISE_APPLICATION_ERROR(-20001, 'model ' || l_key || ' is not installed');
    END;
    g_clock := g_clock + 1;
    IF g_models.EXISTS(l_key) AND g_models(l_key).sha256 = l_sha THEN
      g_models(l_key).last_used := g_clock;
      RETURN l_key;
    END IF;
    IF NOT g_models.EXISTS(l_key) AND g_models.COUNT >= c_max_cached THEN
      evict_least_recently_used;  -- the champion, used every batch, stays
    END IF;
    g_models(l_key) := read_model(p_name, p_version, l_sha, l_count, l_scale);
    g_models(l_key).last_used := g_clock;
    g_cache_loads := g_cache_loads + 1;
    RETURN l_key;
  END ensure_loaded;

  -- exp(v) for v <= 0 (softmax), in double precision; below -80 it returns 0
  -- (e^-80 = 1.8e-35, nothing next to the 1 the maximum contributes to the sum).
  -- Literals in the loops below are typed (0f, 80d...): a NUMBER literal next to a
  -- BINARY_FLOAT/DOUBLE operand is a conversion the compiler may leave in the loop.
  FUNCTION exp_clamped(p_value BINARY_DOUBLE) RETURN BINARY_DOUBLE IS
  BEGIN
    IF p_value < -80d THEN
      RETURN 0d;
    END IF;
    RETURN EXP(p_value);
  END exp_clamped;

  -- reference: x = ACTIVATIONS[act](z), on z' (p_rows outputs x p_cols images, column-major)
  PROCEDURE activate(p_activation VARCHAR2, z IN OUT NOCOPY UTL_NLA_ARRAY_FLT,
                     p_rows PLS_INTEGER, p_cols PLS_INTEGER)
  IS
    l_base PLS_INTEGER;
    l_max  BINARY_DOUBLE;
    l_sum  BINARY_DOUBLE;
  BEGIN
    CASE p_activation
      WHEN 'identity' THEN
        NULL;                                        -- reference: lambda z: z
      WHEN 'relu' THEN
        FOR i IN 1 .. p_rows * p_cols LOOP           -- reference: np.maximum(z, 0)
          IF z(i) < 0f THEN
            z(i) := 0f;
          END IF;
        END LOOP;
      WHEN 'sigmoid' THEN
        FOR i IN 1 .. p_rows * p_cols LOOP           -- reference: 1.0 / (1.0 + np.exp(-z))
          IF z(i) < -80f THEN
            z(i) := 0f;                              -- numpy: < 1.8e-35 (0 below -88.7)
          ELSIF z(i) > 80f THEN
            z(i) := 1f;                              -- 1 - 1.8e-35 is 1 in float32
          ELSE
            z(i) := 1d / (1d + EXP(-TO_BINARY_DOUBLE(z(i))));
          END IF;
        END LOOP;
      WHEN 'tanh' THEN
        FOR i IN 1 .. p_rows * p_cols LOOP           -- reference: np.tanh(z)
          IF z(i) > 20f THEN
            z(i) := 1f;                              -- tanh(20) is 1 in float32
          ELSIF z(i) < -20f THEN
            z(i) := -1f;
          ELSE
            z(i) := 1d - 2d / (EXP(2d * TO_BINARY_DOUBLE(z(i))) + 1d);
          END IF;
        END LOOP;
      WHEN 'softmax' THEN
        FOR j IN 1 .. p_cols LOOP                    -- one image (a row in numpy) at a time
          l_base := (j - 1) * p_rows;
          l_max := z(l_base + 1);                    -- reference: z.max(axis=1, keepdims=True)
          FOR k IN 2 .. p_rows LOOP
            IF z(l_base + k) > l_max THEN
              l_max := z(l_base + k);
            END IF;
          END LOOP;
          l_sum := 0d;
          FOR k IN 1 .. p_rows LOOP                  -- reference: shifted = np.exp(z - max)
            z(l_base + k) := exp_clamped(z(l_base + k) - l_max);
            l_sum := l_sum + z(l_base + k);          -- reference: shifted.sum(axis=1)
          END LOOP;
          FOR k IN 1 .. p_rows LOOP                  -- reference: shifted / sum
            z(l_base + k) := z(l_base + k) / l_sum;
          END LOOP;
        END LOOP;
      ELSE
        RAISE_APPLICATION_ERROR(-20004, 'unknown activation ' || p_activation);
    END CASE;
  END activate;

  -- x' (p_images columns of 784) for a chunk: every entry 0 (a copy of the cached
  -- g_zeros), so only non-zero pixels are written; about 80 % of MNIST's are zero.
  FUNCTION zero_inputs(p_images PLS_INTEGER) RETURN UTL_NLA_ARRAY_FLT IS
    x UTL_NLA_ARRAY_FLT;
  BEGIN
    IF g_zeros IS NULL THEN
      g_zeros := UTL_NLA_ARRAY_FLT();
      g_zeros.EXTEND(c_inputs * c_max_chunk);        -- EXTEND leaves NULLs: set them once
      FOR i IN 1 .. c_inputs * c_max_chunk LOOP
        g_zeros(i) := 0f;
      END LOOP;
    END IF;
    x := g_zeros;
    IF p_images < c_max_chunk THEN
      x.TRIM(c_inputs * (c_max_chunk - p_images));
    END IF;
    RETURN x;
  END zero_inputs;

  -- reference: x = pixels.astype(np.float32) * np.float32(input_scale), for one image:
  -- its 784 bytes into x(p_base + 1 .. p_base + 784), which hold zeros already.
  -- An all-zero row of 28 pixels is skipped with one RAW comparison; otherwise the row
  -- is read 4 bytes at a time as a big-endian signed 32-bit integer, a zero word is
  -- skipped, and a non-zero word is split into its bytes with integer arithmetic
  -- (the top byte carries the sign) and each byte looked up in p_value (its scaled
  -- float32, computed once per model: bit-exact with numpy's product).
  -- tests/oracle_ports.py holds a line-by-line Python port of it (tests/unit/test_oracle_decode.py).
  PROCEDURE decode_image(p_image RAW, p_base PLS_INTEGER, p_value t_pixel_values,
                         x IN OUT NOCOPY UTL_NLA_ARRAY_FLT)
  IS
    l_row  RAW(28);
    l_word PLS_INTEGER;
    l_top  PLS_INTEGER;
    l_byte PLS_INTEGER;
    l_at   PLS_INTEGER;
  BEGIN
    FOR r IN 0 .. c_row_bytes - 1 LOOP
      l_row := UTL_RAW.SUBSTR(p_image, r * c_row_bytes + 1, c_row_bytes);
      IF l_row <> c_zero_row THEN
        FOR q IN 0 .. c_row_words - 1 LOOP
          l_word := UTL_RAW.CAST_TO_BINARY_INTEGER(UTL_RAW.SUBSTR(l_row, 4 * q + 1, 4),
                                                   UTL_RAW.BIG_ENDIAN);
          IF l_word <> 0 THEN
            l_at := p_base + r * c_row_bytes + 4 * q;  -- x(l_at + 1 .. l_at + 4)
            l_top := 0;
            IF l_word < 0 THEN                          -- top byte >= 128
              l_top := 128;
              l_word := (l_word + 2147483647) + 1;      -- clear the sign bit, no overflow
            END IF;
            l_byte := TRUNC(l_word / 16777216);
            x(l_at + 1) := p_value(l_top + l_byte);
            l_word := l_word - l_byte * 16777216;
            l_byte := TRUNC(l_word / 65536);
            x(l_at + 2) := p_value(l_byte);
            l_word := l_word - l_byte * 65536;
            l_byte := TRUNC(l_word / 256);
            x(l_at + 3) := p_value(l_byte);
            x(l_at + 4) := p_value(l_word - l_byte * 256);
          END IF;
        END LOOP;
      END IF;
    END LOOP;
  END decode_image;

  -- Score one chunk of images (columns) with a cached model; insert the predictions.
  PROCEDURE score_chunk(p_key VARCHAR2, p_ids t_ids, p_pixels t_pixels,
                        p_name VARCHAR2, p_version NUMBER, p_role VARCHAR2)
  IS
    l_images    CONSTANT PLS_INTEGER := p_ids.COUNT;
    l_scored_at CONSTANT NUMBER := epoch_ms;
    l_value     t_pixel_values := g_models(p_key).pixel_value;
    x           UTL_NLA_ARRAY_FLT;                     -- x': one column per image
    z           UTL_NLA_ARRAY_FLT;
    l_in        PLS_INTEGER;
    l_out       PLS_INTEGER;
    l_base      PLS_INTEGER;
    l_best      PLS_INTEGER;
    l_predicted t_predicted;
    l_probs     t_probs;
    l_cpu       NUMBER := cpu_now;
  BEGIN
    -- reference: x = pixels.astype(np.float32) * np.float32(input_scale)
    x := zero_inputs(l_images);
    FOR j IN 1 .. l_images LOOP
      IF UTL_RAW.LENGTH(p_pixels(j)) <> c_inputs THEN
        RAISE_APPLICATION_ERROR(-20005, 'image ' || p_ids(j) || ' does not have 784 pixels');
      END IF;
      decode_image(p_pixels(j), (j - 1) * c_inputs, l_value, x);
    END LOOP;
    tick('decode', l_cpu);

    -- reference: for w, b, act in zip(weights, biases, activations):
    FOR l IN 1 .. g_models(p_key).layers.COUNT LOOP
      l_in := g_models(p_key).layers(l).n_in;
      l_out := g_models(p_key).layers(l).n_out;
      -- reference: x @ w + b, computed transposed as z' = W' x' + b (see file header)
      z := UTL_NLA_ARRAY_FLT();
      z.EXTEND(l_out * l_images);
      FOR j IN 1 .. l_images LOOP                    -- every column of z' starts as b
        FOR k IN 1 .. l_out LOOP
          z((j - 1) * l_out + k) := g_models(p_key).layers(l).b(k);
        END LOOP;
      END LOOP;
      UTL_NLA.BLAS_GEMM(
        'N', 'N',                         -- transa, transb: W' and x' as stored
        l_out, l_images, l_in,            -- m, n, k: (n_out x n_in) times (n_in x images)
        c_one,                            -- alpha
        g_models(p_key).layers(l).w,      -- a = W' (row-major w read column-major)
        l_out,                            -- lda
        x,                                -- b = x'
        l_in,                             -- ldb
        c_one,                            -- beta: keep the bias already in z'
        z,                                -- c = z', overwritten with W' x' + b
        l_out);                           -- ldc
      tick('gemm', l_cpu);
      -- reference: x = ACTIVATIONS[act](...)
      activate(g_models(p_key).layers(l).activation, z, l_out, l_images);
      x := z;
      tick('activate', l_cpu);
    END LOOP;

    -- reference: predict(probabilities) = np.argmax(probabilities, axis=1)
    FOR j IN 1 .. l_images LOOP
      l_base := (j - 1) * c_classes;
      l_best := 1;
      FOR k IN 2 .. c_classes LOOP
        IF x(l_base + k) > x(l_base + l_best) THEN  -- strict: the first maximum wins, as argmax
          l_best := k;
        END IF;
      END LOOP;
      l_predicted(j) := l_best - 1;
      l_probs(j) := UTL_RAW.CONCAT(                 -- 10 x float32 little-endian = numpy '<f4'
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 1), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 2), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 3), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 4), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 5), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 6), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 7), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 8), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 9), UTL_RAW.LITTLE_ENDIAN),
        UTL_RAW.CAST_FROM_BINARY_FLOAT(x(l_base + 10), UTL_RAW.LITTLE_ENDIAN));
    END LOOP;

    FORALL j IN 1 .. l_images                       -- set-based: one round trip per chunk
      INSERT INTO mnist_predictions
        (image_id, model_name, model_version, role, predicted, probabilities, scored_at)
      VALUES
        (p_ids(j), p_name, p_version, p_role, l_predicted(j), l_probs(j), l_scored_at);
    tick('store', l_cpu);
  END score_chunk;

  PROCEDURE purge(
    p_older_than_s    IN  NUMBER,
    p_images          OUT NUMBER,
    p_predictions     OUT NUMBER,
    p_rows_per_commit IN  PLS_INTEGER DEFAULT 10000)
  IS
    -- inserted_at holds SYSTIMESTAMP without its zone (the server's clock), so compare
    -- with the same; the cutoff is fixed once, so rows inserted meanwhile are kept
    l_cutoff CONSTANT TIMESTAMP :=
      CAST(SYSTIMESTAMP AS TIMESTAMP) - NUMTODSINTERVAL(p_older_than_s, 'SECOND');
    l_ids t_ids;
  BEGIN
    IF p_older_than_s IS NULL OR p_older_than_s < 0 OR p_rows_per_commit < 1 THEN
      RAISE_APPLICATION_ERROR(-20006, 'purge: the age must be >= 0 seconds and the chunk >= 1 row');
    END IF;
    p_images := 0;
    p_predictions := 0;
    LOOP
      SELECT image_id BULK COLLECT INTO l_ids
        FROM mnist_images
       WHERE inserted_at < l_cutoff AND ROWNUM <= p_rows_per_commit;
      EXIT WHEN l_ids.COUNT = 0;
      FORALL j IN 1 .. l_ids.COUNT                  -- predictions first: they reference the image
        DELETE FROM mnist_predictions WHERE image_id = l_ids(j);
      p_predictions := p_predictions + SQL%ROWCOUNT;
      FORALL j IN 1 .. l_ids.COUNT
        DELETE FROM mnist_images WHERE image_id = l_ids(j);
      p_images := p_images + SQL%ROWCOUNT;
      COMMIT;
    END LOOP;
  END purge;

  -- p_model_version, or the version active_models names when it is NULL.
  FUNCTION resolve_version(p_model_name VARCHAR2, p_model_version NUMBER) RETURN NUMBER IS
    l_version NUMBER := p_model_version;
  BEGIN
    IF l_version IS NULL THEN
      BEGIN
        SELECT model_version INTO l_version FROM active_models WHERE model_name = p_model_name;
      EXCEPTION
        WHEN NO_DATA_FOUND THEN
          RAISE_APPLICATION_ERROR(-20001, 'model ' || p_model_name || ' has no active version');
      END;
    END IF;
    RETURN l_version;
  END resolve_version;

  -- Score every (image_id, pixels) row of p_todo in chunks (LIMIT keeps each UTL_NLA array
  -- within 1,000,000 entries) and insert the predictions; closes p_todo.
  PROCEDURE score_rows(p_todo IN OUT SYS_REFCURSOR, p_key VARCHAR2, p_name VARCHAR2,
                       p_version NUMBER, p_role VARCHAR2)
  IS
    l_chunk  CONSTANT PLS_INTEGER := LEAST(c_max_chunk, TRUNC(c_max_entries / g_models(p_key).widest));
    l_ids    t_ids;
    l_pixels t_pixels;
    l_cpu    NUMBER := cpu_now;
  BEGIN
    LOOP
      FETCH p_todo BULK COLLECT INTO l_ids, l_pixels LIMIT l_chunk;
      EXIT WHEN l_ids.COUNT = 0;
      tick('fetch', l_cpu);
      score_chunk(p_key, l_ids, l_pixels, p_name, p_version, p_role);
      l_cpu := cpu_now;                    -- score_chunk charged its own phases
      IF g_timing THEN
        count_up('images', l_ids.COUNT);
      END IF;
    END LOOP;
    CLOSE p_todo;
    IF g_timing THEN
      count_up('batches', 1);
    END IF;
  EXCEPTION
    WHEN OTHERS THEN
      IF p_todo%ISOPEN THEN
        CLOSE p_todo;
      END IF;
      RAISE;
  END score_rows;

  PROCEDURE score_staged(
    p_model_name    IN VARCHAR2,
    p_model_version IN NUMBER,
    p_role          IN VARCHAR2 DEFAULT 'champion')
  IS
    l_cpu     NUMBER := cpu_now;
    l_version CONSTANT NUMBER := resolve_version(p_model_name, p_model_version);
    l_key     CONSTANT VARCHAR2(200) := ensure_loaded(p_model_name, l_version);
    l_todo    SYS_REFCURSOR;
  BEGIN
    tick('load', l_cpu);
    OPEN l_todo FOR
      SELECT i.image_id, i.pixels
        FROM mnist_batch_ids b JOIN mnist_images i ON i.image_id = b.image_id
       WHERE NOT EXISTS (SELECT 1
                           FROM mnist_predictions p
                          WHERE p.image_id = i.image_id
                            AND p.model_name = p_model_name
                            AND p.model_version = l_version
                            AND p.role = p_role)
       ORDER BY i.image_id;
    score_rows(l_todo, l_key, p_model_name, l_version, p_role);
  END score_staged;

  PROCEDURE score_batch(
    p_batch_id      IN VARCHAR2,
    p_model_name    IN VARCHAR2,
    p_model_version IN NUMBER,
    p_role          IN VARCHAR2 DEFAULT 'champion')
  IS
    l_version CONSTANT NUMBER := resolve_version(p_model_name, p_model_version);
    l_key     CONSTANT VARCHAR2(200) := ensure_loaded(p_model_name, l_version);
    l_todo    SYS_REFCURSOR;
  BEGIN
    OPEN l_todo FOR
      SELECT i.image_id, i.pixels
        FROM mnist_images i
       WHERE i.batch_id = p_batch_id
         AND NOT EXISTS (SELECT 1
                           FROM mnist_predictions p
                          WHERE p.image_id = i.image_id
                            AND p.model_name = p_model_name
                            AND p.model_version = l_version
                            AND p.role = p_role)
       ORDER BY i.image_id;
    score_rows(l_todo, l_key, p_model_name, l_version, p_role);
  END score_batch;

END mnist_scorer;
/
