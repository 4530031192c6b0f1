// Command s3put creates S3 buckets and uploads files into them, for the demo and the e2e suite:
//
//	AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... go run ./hack/s3put \
//	  -endpoint http://10.250.1.2:30070 -bucket datasets -prefix fashion-mnist FILE...
//
// It also creates the buckets named in -create. Credentials come from the environment, as for the
// trainer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kubetrain/kubetrain/internal/blob"
	"github.com/kubetrain/kubetrain/internal/contract"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL")
	bucket := flag.String("bucket", "", "bucket to upload into (created if missing)")
	prefix := flag.String("prefix", "", "key prefix of the uploaded files")
	create := flag.String("create", "", "comma-separated buckets to create as well")
	flag.Parse()
	if *endpoint == "" {
		fail(errors.New("-endpoint is required"))
	}
	ctx := context.Background()
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: endpoint, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv(contract.SecretKeyAccessKeyID),
			os.Getenv(contract.SecretKeySecretAccessKey), ""),
	})
	buckets := strings.FieldsFunc(*create, func(r rune) bool { return r == ',' })
	if *bucket != "" {
		buckets = append(buckets, *bucket)
	}
	for _, b := range buckets {
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		var owned *types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			fail(fmt.Errorf("creating bucket %s: %w", b, err))
		}
	}
	if *bucket == "" {
		return
	}
	b, err := blob.Open(ctx, fmt.Sprintf("s3://%s/%s?endpoint=%s&use_path_style=true", *bucket, *prefix, *endpoint))
	if err != nil {
		fail(err)
	}
	defer b.Close()
	for _, f := range flag.Args() {
		data, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		if err := b.WriteAll(ctx, filepath.Base(f), data, nil); err != nil {
			fail(fmt.Errorf("uploading %s: %w", f, err))
		}
		fmt.Printf("uploaded s3://%s/%s%s (%d bytes)\n", *bucket, strings.TrimSuffix(*prefix, "/")+"/", filepath.Base(f), len(data))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "s3put:", err)
	os.Exit(1)
}
