-- Each item gets a free-text description; existing rows get an empty one.
ALTER TABLE items ADD COLUMN description text NOT NULL DEFAULT '';
CREATE INDEX items_created_at ON items (created_at DESC);
