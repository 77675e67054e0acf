-- +migrate Up
ALTER TABLE tags ADD COLUMN color TEXT;
UPDATE tags SET color = 'grey';

-- +migrate Down
DELETE FROM tags WHERE name = 'default';
ALTER TABLE tagz DROP COLUMN color;
