-- EXMP-113: items have a priority, 1 (most urgent) to 5; existing rows get 3.
ALTER TABLE items ADD COLUMN priority smallint NOT NULL DEFAULT 3
    CHECK (priority BETWEEN 1 AND 5);
CREATE INDEX items_priority ON items (priority, name);
