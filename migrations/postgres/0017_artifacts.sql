-- Every file kept in the artifact store, with the size and sha256 the server computed as it
-- streamed in. `path` is relative to the store's root, '/'-separated; byte order ("C") so a
-- directory's files are one range of the primary key.
CREATE TABLE artifacts (
    path        TEXT    COLLATE "C" PRIMARY KEY,
    size        BIGINT  NOT NULL,
    sha256      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    NOT NULL
);
