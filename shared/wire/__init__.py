"""The wire: protocol v1 frames, the client-push port (API Gateway @connections), the generation
queue port (SQS FIFO) and its dead letters, and the Lambda events the chat functions receive. Below
both chat/ and handoff/, which speak it; it imports neither."""
