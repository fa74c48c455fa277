"""kefu's shared package: the logic every Lambda function uses."""
