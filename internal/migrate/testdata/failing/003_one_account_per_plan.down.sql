DROP INDEX accounts_plan;
DELETE FROM accounts WHERE id = 3;
