-- Representative rows for the schema after create_memberships: the
-- verifier applies this after the first migration it fits.
INSERT INTO accounts (id, name) VALUES (1, 'Acme'), (2, 'Globex'), (3, 'Initech');
INSERT INTO users (id, account_id, email, full_name) VALUES
    (1, 1, 'ada@acme.example', 'Ada Lovelace'),
    (2, 1, 'grace@acme.example', 'Grace Brewster Hopper'),
    (3, 2, 'edsger@globex.example', 'Edsger'),
    (4, 3, 'barbara@initech.example', 'Barbara Liskov');
INSERT INTO projects (id, account_id, name, slug, archived) VALUES
    (1, 1, 'Website', 'website', 0),
    (2, 1, 'Billing', 'billing', 0),
    (3, 2, 'Old app', 'old-app', 1),
    (4, 3, 'Reports', 'reports', 0);
INSERT INTO memberships (user_id, project_id, role) VALUES
    (1, 1, 'owner'), (2, 1, 'member'), (2, 2, 'owner'), (3, 3, 'viewer'), (4, 4, 'owner');
