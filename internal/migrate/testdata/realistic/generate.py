# Generates this directory's test data: the same migrations per
# dialect in golang-migrate and goose format. Run: python3 generate.py
import os, shutil
base = os.path.dirname(os.path.abspath(__file__))
for d in ('postgres', 'sqlite'):
    shutil.rmtree(os.path.join(base, d), ignore_errors=True)

PG, SQ = 'postgres', 'sqlite'
# Each migration: name, {dialect: (up, down)} or (up, down) for both; optional flags.
M = []
def m(name, pg, sq=None, goose_pg=None):
    M.append((name, pg, sq if sq is not None else pg, goose_pg))

m('create_accounts',
  ("""CREATE TABLE accounts (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);""", "DROP TABLE accounts;"),
  ("""CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);""", "DROP TABLE accounts;"))
m('create_users',
  ("""CREATE TABLE users (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email      VARCHAR(255) NOT NULL,
    full_name  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);""", "DROP TABLE users;"),
  ("""CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email      VARCHAR(255) NOT NULL,
    full_name  TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);""", "DROP TABLE users;"))
m('users_email_unique', ("CREATE UNIQUE INDEX users_email ON users (email);", "DROP INDEX users_email;"))
m('create_projects',
  ("""CREATE TABLE projects (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    slug       VARCHAR(64) NOT NULL,
    archived   BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (account_id, slug)
);""", "DROP TABLE projects;"),
  ("""CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    slug       VARCHAR(64) NOT NULL,
    archived   INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    UNIQUE (account_id, slug)
);""", "DROP TABLE projects;"))
m('projects_account_index', ("CREATE INDEX projects_account ON projects (account_id);", "DROP INDEX projects_account;"))
m('create_memberships',
  ("""CREATE TABLE memberships (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member', 'viewer')),
    PRIMARY KEY (user_id, project_id)
);""", "DROP TABLE memberships;"),
  ("""CREATE TABLE memberships (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member', 'viewer')),
    PRIMARY KEY (user_id, project_id)
);""", "DROP TABLE memberships;"))
m('add_users_last_login',
  ("ALTER TABLE users ADD COLUMN last_login_at TIMESTAMPTZ;", "ALTER TABLE users DROP COLUMN last_login_at;"),
  ("ALTER TABLE users ADD COLUMN last_login_at TEXT;", "ALTER TABLE users DROP COLUMN last_login_at;"))
m('add_accounts_plan', ("ALTER TABLE accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';", "ALTER TABLE accounts DROP COLUMN plan;"))
m('backfill_team_plan', ("""-- Accounts with more than one project are on the team plan.
UPDATE accounts SET plan = 'team'
WHERE id IN (SELECT account_id FROM projects GROUP BY account_id HAVING count(*) > 1);""",
  "UPDATE accounts SET plan = 'free' WHERE plan = 'team';"))
m('create_api_keys',
  ("""CREATE TABLE api_keys (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash CHAR(64) NOT NULL UNIQUE,
    label      TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);""", "DROP TABLE api_keys;"),
  ("""CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash CHAR(64) NOT NULL UNIQUE,
    label      TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    revoked_at TEXT
);""", "DROP TABLE api_keys;"))
m('api_keys_active_index',
  ("CREATE INDEX api_keys_active ON api_keys (account_id) WHERE revoked_at IS NULL;", "DROP INDEX api_keys_active;"),
  goose_pg=("-- +goose NO TRANSACTION\n", "CREATE INDEX CONCURRENTLY api_keys_active ON api_keys (account_id) WHERE revoked_at IS NULL;", "DROP INDEX CONCURRENTLY api_keys_active;"))
m('rename_full_name', ("ALTER TABLE users RENAME COLUMN full_name TO display_name;", "ALTER TABLE users RENAME COLUMN display_name TO full_name;"))
m('add_users_locale', ("ALTER TABLE users ADD COLUMN locale VARCHAR(16) NOT NULL DEFAULT 'en';", "ALTER TABLE users DROP COLUMN locale;"))
m('create_invoices',
  ("""CREATE TABLE invoices (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    number       VARCHAR(32) NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency     CHAR(3) NOT NULL DEFAULT 'EUR',
    issued_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    paid_at      TIMESTAMPTZ,
    UNIQUE (account_id, number)
);""", "DROP TABLE invoices;"),
  ("""CREATE TABLE invoices (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    number       VARCHAR(32) NOT NULL,
    amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency     CHAR(3) NOT NULL DEFAULT 'EUR',
    issued_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    paid_at      TEXT,
    UNIQUE (account_id, number)
);""", "DROP TABLE invoices;"))
m('invoices_unpaid_index', ("CREATE INDEX invoices_unpaid ON invoices (account_id, issued_at) WHERE paid_at IS NULL;", "DROP INDEX invoices_unpaid;"))
m('rename_projects_to_workspaces', ("ALTER TABLE projects RENAME TO workspaces;", "ALTER TABLE workspaces RENAME TO projects;"))
m('rename_memberships_project_id', ("ALTER TABLE memberships RENAME COLUMN project_id TO workspace_id;", "ALTER TABLE memberships RENAME COLUMN workspace_id TO project_id;"))
m('add_workspaces_description', ("ALTER TABLE workspaces ADD COLUMN description TEXT;", "ALTER TABLE workspaces DROP COLUMN description;"))
m('widen_users_email',
  ("-- RFC 5321 allows 320 characters.\nALTER TABLE users ALTER COLUMN email TYPE VARCHAR(320);", "ALTER TABLE users ALTER COLUMN email TYPE VARCHAR(255);"),
  # SQLite does not enforce lengths and would need a rebuild of users:
  # a plain new column instead.
  ("ALTER TABLE users ADD COLUMN avatar_url TEXT;", "ALTER TABLE users DROP COLUMN avatar_url;"))
m('create_audit_events',
  ("""CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    actor_id   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action     TEXT NOT NULL,
    payload    JSONB NOT NULL DEFAULT '{}',
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_account_at ON audit_events (account_id, at);""", "DROP TABLE audit_events;"),
  ("""CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    actor_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    action     TEXT NOT NULL,
    payload    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    at         TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX audit_events_account_at ON audit_events (account_id, at);""", "DROP TABLE audit_events;"))
m('users_updated_at',
  ("""ALTER TABLE users ADD COLUMN updated_at TIMESTAMPTZ NOT NULL DEFAULT now();
@@BEGIN
CREATE FUNCTION users_touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now(); -- every update
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
@@END
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_touch();""",
   """DROP TRIGGER users_touch ON users;
DROP FUNCTION users_touch();
ALTER TABLE users DROP COLUMN updated_at;"""),
  ("""ALTER TABLE users ADD COLUMN updated_at TEXT;
@@BEGIN
CREATE TRIGGER users_touch AFTER UPDATE OF display_name, email ON users
BEGIN
    UPDATE users SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
END;
@@END""",
   """DROP TRIGGER users_touch;
ALTER TABLE users DROP COLUMN updated_at;"""))
m('add_invoices_status', ("""ALTER TABLE invoices ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
UPDATE invoices SET status = 'paid' WHERE paid_at IS NOT NULL;""", "ALTER TABLE invoices DROP COLUMN status;"))
m('invoices_status_index', ("CREATE INDEX invoices_status ON invoices (status);", "DROP INDEX invoices_status;"))
m('create_feature_flags',
  ("""CREATE TABLE feature_flags (
    key             VARCHAR(100) PRIMARY KEY,
    enabled         BOOLEAN NOT NULL DEFAULT false,
    rollout_percent INTEGER NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100)
);
INSERT INTO feature_flags (key) VALUES ('new_billing'), ('dark_mode');""", "DROP TABLE feature_flags;"),
  ("""CREATE TABLE feature_flags (
    key             VARCHAR(100) PRIMARY KEY,
    enabled         INTEGER NOT NULL DEFAULT 0,
    rollout_percent INTEGER NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100)
);
INSERT INTO feature_flags (key) VALUES ('new_billing'), ('dark_mode');""", "DROP TABLE feature_flags;"))
m('split_display_name',
  ("""ALTER TABLE users ADD COLUMN first_name TEXT, ADD COLUMN last_name TEXT;
UPDATE users SET first_name = split_part(display_name, ' ', 1),
                 last_name = nullif(substr(display_name, length(split_part(display_name, ' ', 1)) + 2), '');""",
   "ALTER TABLE users DROP COLUMN last_name, DROP COLUMN first_name;"),
  ("""ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
UPDATE users SET
    first_name = CASE WHEN instr(display_name, ' ') > 0 THEN substr(display_name, 1, instr(display_name, ' ') - 1) ELSE display_name END,
    last_name  = CASE WHEN instr(display_name, ' ') > 0 THEN substr(display_name, instr(display_name, ' ') + 1) END;""",
   "ALTER TABLE users DROP COLUMN last_name;\nALTER TABLE users DROP COLUMN first_name;"))
m('add_memberships_invited_by',
  ("ALTER TABLE memberships ADD COLUMN invited_by BIGINT REFERENCES users (id) ON DELETE SET NULL;", "ALTER TABLE memberships DROP COLUMN invited_by;"),
  # SQLite cannot drop a column that is a foreign key: no REFERENCES here.
  ("ALTER TABLE memberships ADD COLUMN invited_by INTEGER;", "ALTER TABLE memberships DROP COLUMN invited_by;"))
m('workspaces_slug_lower_index', ("CREATE INDEX workspaces_slug_lower ON workspaces (lower(slug));", "DROP INDEX workspaces_slug_lower;"))
m('create_sessions',
  ("""CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);""", "DROP TABLE sessions;"),
  ("""CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);""", "DROP TABLE sessions;"))
m('api_keys_scopes', ("""ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'read';
UPDATE api_keys SET scopes = 'read,write' WHERE label = 'ci';""", "ALTER TABLE api_keys DROP COLUMN scopes;"))
m('create_invoice_lines',
  ("""CREATE TABLE invoice_lines (
    invoice_id   BIGINT NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no      INTEGER NOT NULL,
    description  TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);""", "DROP TABLE invoice_lines;"),
  ("""CREATE TABLE invoice_lines (
    invoice_id   INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_no      INTEGER NOT NULL,
    description  TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);""", "DROP TABLE invoice_lines;"))

def plain(sql):
    return '\n'.join(l for l in sql.split('\n') if l not in ('@@BEGIN', '@@END'))
def goose(sql):
    return sql.replace('@@BEGIN', '-- +goose StatementBegin').replace('@@END', '-- +goose StatementEnd')

for d, idx in ((PG, 1), (SQ, 2)):
    for i, mig in enumerate(M, 1):
        name = mig[0]
        up, down = mig[idx]
        v = f'{i:03d}_{name}'
        gm = f'{base}/{d}/golang-migrate'
        gs = f'{base}/{d}/goose'
        os.makedirs(gm, exist_ok=True); os.makedirs(gs, exist_ok=True)
        open(f'{gm}/{v}.up.sql', 'w').write(plain(up) + '\n')
        open(f'{gm}/{v}.down.sql', 'w').write(plain(down) + '\n')
        head = ''
        if d == PG and mig[3]:
            head, up, down = mig[3]
        open(f'{gs}/{v}.sql', 'w').write(head + '-- +goose Up\n' + goose(up) + '\n\n-- +goose Down\n' + goose(down) + '\n')

seed_pg = """-- Representative rows for the schema after create_memberships: the
-- verifier applies this after the first migration it fits.
INSERT INTO accounts (id, name) VALUES (1, 'Acme'), (2, 'Globex'), (3, 'Initech');
INSERT INTO users (id, account_id, email, full_name) VALUES
    (1, 1, 'ada@acme.example', 'Ada Lovelace'),
    (2, 1, 'grace@acme.example', 'Grace Brewster Hopper'),
    (3, 2, 'edsger@globex.example', 'Edsger'),
    (4, 3, 'barbara@initech.example', 'Barbara Liskov');
INSERT INTO projects (id, account_id, name, slug, archived) VALUES
    (1, 1, 'Website', 'website', %(f)s),
    (2, 1, 'Billing', 'billing', %(f)s),
    (3, 2, 'Old app', 'old-app', %(t)s),
    (4, 3, 'Reports', 'reports', %(f)s);
INSERT INTO memberships (user_id, project_id, role) VALUES
    (1, 1, 'owner'), (2, 1, 'member'), (2, 2, 'owner'), (3, 3, 'viewer'), (4, 4, 'owner');
"""
open(f'{base}/{PG}/seed.sql', 'w').write(seed_pg % {'t': 'true', 'f': 'false'})
open(f'{base}/{SQ}/seed.sql', 'w').write(seed_pg % {'t': '1', 'f': '0'})
print(len(M))
