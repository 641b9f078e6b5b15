"""The store: schema, migrations, writes, aggregates and the queries over them."""
