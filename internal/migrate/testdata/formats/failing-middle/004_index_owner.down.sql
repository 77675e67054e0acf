DROP INDEX accounts_owner;
