ALTER TABLE memberships ADD COLUMN invited_by INTEGER;
