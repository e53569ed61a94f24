"""The SQL logic both databases share: the execution commit (`execution`), the store methods
(`store`), the statements (`statements`) and the schema (`schema`), written once against a
`Dialect` and a `Connection` (`dialect`). `aion.persistence.sqlite` and
`aion.persistence.postgres` are the dialects."""
