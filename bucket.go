package hammer

// BucketKey names one fixed window of one id.
type BucketKey struct {
	Bucket int64 // window number: unix ms / scale ms
	ID     string
}

// BucketInfo is the stored state of one bucket.
type BucketInfo struct {
	Key     BucketKey
	Count   int64
	Created int64 // unix ms of the first hit
	Updated int64 // unix ms of the latest hit
}

// bucketOf returns the window number of the instant nowMs for windows of
// scaleMs milliseconds: floor(nowMs / scaleMs). scaleMs must be positive.
func bucketOf(nowMs, scaleMs int64) int64 {
	b := nowMs / scaleMs
	if nowMs%scaleMs < 0 {
		b--
	}
	return b
}

// msToNextBucket returns how many milliseconds remain, at nowMs, until the
// window that holds nowMs ends: (bucket+1)*scale - now.
func msToNextBucket(nowMs, scaleMs int64) int64 {
	return (bucketOf(nowMs, scaleMs)+1)*scaleMs - nowMs
}

// remaining returns max(limit-count, 0).
func remaining(limit, count int64) int64 {
	if count >= limit {
		return 0
	}
	return limit - count
}
