"""Input side of Assemble-TF: TFRecord schema, decoder, preprocessing,
the tf.data pipeline and the dataset builder."""
