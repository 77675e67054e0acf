DROP INDEX projects_account;
