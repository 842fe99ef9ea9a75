-- Addresses each user signed in from, and when last: the per-account sign-in limit spares them.
CREATE TABLE sign_in_addresses (
    username     TEXT   NOT NULL,
    client_addr  TEXT   NOT NULL,
    last_at      BIGINT NOT NULL,
    PRIMARY KEY (username, client_addr)
);
