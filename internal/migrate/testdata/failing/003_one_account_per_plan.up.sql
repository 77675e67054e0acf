INSERT INTO accounts (id, email) VALUES (3, 'edsger@example.com');
-- Fails: accounts 2 and 3 are both on the free plan.
CREATE UNIQUE INDEX accounts_plan ON accounts (plan);
