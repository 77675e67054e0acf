-- Accounts with more than one project are on the team plan.
UPDATE accounts SET plan = 'team'
WHERE id IN (SELECT account_id FROM projects GROUP BY account_id HAVING count(*) > 1);
