UPDATE accounts SET plan = 'free' WHERE plan = 'team';
