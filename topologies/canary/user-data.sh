#!/bin/sh
# User data of the model instances (report section 4.2, seed 001 step 3):
# download the model artifacts from S3 through the VPC endpoint.
# vpcsim points the AWS CLI at the lab's S3 (AWS_ENDPOINT_URL_S3); any
# access key works, as the bucket policy alone decides.
mkdir -p app && cd app || exit 1
if command -v aws >/dev/null 2>&1; then
    aws configure set aws_access_key_id AKIAVPCSIMLAB0000000
    aws configure set aws_secret_access_key vpcsim-lab-secret
    aws configure set default.region us-east-1
    for f in model_v1_prod.py model_v2_canary.py modelo.pkl; do
        aws s3 cp "s3://p4-buquet/backend/$f" .
    done
else
    # No AWS CLI on this machine: the same GetObject, unsigned (the
    # policy's Principal is "*"), virtual-hosted style through the VPC DNS.
    for f in model_v1_prod.py model_v2_canary.py modelo.pkl; do
        curl -fsS -o "$f" "http://p4-buquet.s3.us-east-1.amazonaws.com:443/backend/$f" \
            && echo "download: s3://p4-buquet/backend/$f to ./$f"
    done
fi
ls -l
