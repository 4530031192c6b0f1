package controllers

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kubetrainv1alpha1 "github.com/kubetrain/kubetrain/api/v1alpha1"
	"github.com/kubetrain/kubetrain/internal/contract"
)

// TrainerContainerName is the name of the trainer container in every worker pod.
const TrainerContainerName = "trainer"

// trainerUID is the non-root user of the trainer image (distroless's "nonroot").
const trainerUID = 65532

// scratchVolume is the writable emptyDir every worker gets: the root filesystem is read-only.
const scratchVolume = "scratch"

// workerPodName names the pod of a job's worker in an attempt. The suffix "-w<rank>-a<attempt>" ends
// in digits after fixed letters, so it is cut off a pod name in exactly one way: two jobs, one
// named like a prefix of the other, never produce the same pod name.
func workerPodName(jobName string, rank, attempt int32) string {
	return fmt.Sprintf("%s-w%d-a%d", jobName, rank, attempt)
}

// workerHostname is a worker's host name: with the job's worker Service as its subdomain, rank 0's
// is the stable DNS name the other ranks of a data-parallel run find it by.
func workerHostname(jobName string, rank int32) string { return fmt.Sprintf("%s-w%d", jobName, rank) }

// workerSubdomain is the headless Service of a job of several workers (named as the job), empty for
// one worker, which needs none.
func workerSubdomain(tj *kubetrainv1alpha1.TrainingJob) string {
	if tj.Spec.Workers > 1 {
		return tj.Name
	}
	return ""
}

// rendezvous is where rank 0 of a job of several workers listens: its DNS name under the job's
// headless Service, which publishes workers before they are ready.
func rendezvous(tj *kubetrainv1alpha1.TrainingJob) string {
	return fmt.Sprintf("%s.%s.%s.svc:%d", workerHostname(tj.Name, 0), workerSubdomain(tj), tj.Namespace, contract.RendezvousPort)
}

// constructWorkerService builds the headless Service of a job of several workers: it gives each
// worker a DNS name (rank 0's is the rendezvous) from the moment its pod has an address.
func constructWorkerService(tj *kubetrainv1alpha1.TrainingJob) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      workerSubdomain(tj),
			Namespace: tj.Namespace,
			Labels: map[string]string{
				kubetrainv1alpha1.LabelJobName:   tj.Name,
				kubetrainv1alpha1.LabelManagedBy: kubetrainv1alpha1.ManagedByValue,
			},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(tj,
				kubetrainv1alpha1.GroupVersion.WithKind("TrainingJob"))},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector: map[string]string{
				kubetrainv1alpha1.LabelJobName: tj.Name,
				kubetrainv1alpha1.LabelJobUID:  string(tj.UID),
			},
			Ports: []corev1.ServicePort{{Name: "rendezvous", Port: contract.RendezvousPort}},
		},
	}
}

// constructWorkerPod builds the pod of one worker of the job's current attempt. It is pure: the
// reconciler creates what it returns.
func constructWorkerPod(tj *kubetrainv1alpha1.TrainingJob, rank int32, cfg Config) *corev1.Pod {
	spec := &tj.Spec
	attempt := tj.Status.Attempt
	tmpl := spec.Template
	if tmpl == nil {
		tmpl = &kubetrainv1alpha1.WorkerTemplate{}
	}

	labels := map[string]string{}
	for k, v := range tmpl.Labels {
		labels[k] = v
	}
	labels[kubetrainv1alpha1.LabelJobName] = tj.Name
	labels[kubetrainv1alpha1.LabelJobUID] = string(tj.UID)
	labels[kubetrainv1alpha1.LabelRank] = strconv.Itoa(int(rank))
	labels[kubetrainv1alpha1.LabelAttempt] = strconv.Itoa(int(attempt))
	labels[kubetrainv1alpha1.LabelManagedBy] = kubetrainv1alpha1.ManagedByValue

	var annotations map[string]string
	if len(tmpl.Annotations) > 0 {
		annotations = map[string]string{}
		for k, v := range tmpl.Annotations {
			annotations[k] = v
		}
	}

	image := cfg.TrainerImage
	if spec.Image != "" {
		image = spec.Image
	}

	container := corev1.Container{
		Name:            TrainerContainerName,
		Image:           image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            trainerArgs(tj),
		// The operator's variables last: where a name repeats, the last one wins, so none of the
		// user's (which admission already refuses to name like the operator's) can replace them.
		Env:                      append(append([]corev1.EnvVar(nil), tmpl.Env...), trainerEnv(tj, rank)...),
		Resources:                workerResources(&spec.Resources),
		TerminationMessagePath:   contract.TerminationLogPath,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		VolumeMounts: append([]corev1.VolumeMount{{
			Name: scratchVolume, MountPath: contract.ScratchDir,
		}}, tmpl.VolumeMounts...),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
		},
	}

	tolerations := append([]corev1.Toleration(nil), tmpl.Tolerations...)
	if spec.Resources.GPUs > 0 {
		// GPU nodes are commonly tainted with their GPU resource name so that only pods asking for
		// GPUs land there (what the ExtendedResourceToleration admission plugin also adds).
		tolerations = append(tolerations, corev1.Toleration{
			Key: gpuResourceName(&spec.Resources), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
		})
	}

	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        workerPodName(tj.Name, rank, attempt),
			Namespace:   tj.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(tj,
				kubetrainv1alpha1.GroupVersion.WithKind("TrainingJob"))},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To(cfg.TerminationGracePeriodSeconds),
			// The worker reports progress into its job's status with its pod-bound token.
			ServiceAccountName:           TrainerServiceAccount,
			AutomountServiceAccountToken: ptr.To(true),
			Hostname:                     workerHostname(tj.Name, rank),
			Subdomain:                    workerSubdomain(tj),
			Containers:                   []corev1.Container{container},
			Volumes: append([]corev1.Volume{{
				Name:         scratchVolume,
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(scratchSize(&spec.Resources))}},
			}}, tmpl.Volumes...),
			NodeSelector:      tmpl.NodeSelector,
			Tolerations:       tolerations,
			Affinity:          tmpl.Affinity,
			PriorityClassName: tmpl.PriorityClassName,
			RuntimeClassName:  tmpl.RuntimeClassName,
			ImagePullSecrets:  tmpl.ImagePullSecrets,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](trainerUID),
				RunAsGroup:     ptr.To[int64](trainerUID),
				FSGroup:        ptr.To[int64](trainerUID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

// trainerArgs passes the spec to the trainer as flags, one --name=value each.
func trainerArgs(tj *kubetrainv1alpha1.TrainingJob) []string {
	spec := &tj.Spec
	hp := &spec.Hyperparameters
	arg := func(flag, value string) string { return "--" + flag + "=" + value }
	args := []string{
		arg(contract.FlagModel, spec.Model.Preset),
		arg(contract.FlagDataset, spec.Dataset.URI),
		arg(contract.FlagDatasetFormat, spec.Dataset.Format),
		arg(contract.FlagEpochs, strconv.Itoa(int(hp.Epochs))),
		arg(contract.FlagBatchSize, strconv.Itoa(int(hp.BatchSize))),
		arg(contract.FlagLearningRate, strconv.FormatFloat(hp.LearningRate, 'g', -1, 64)),
		arg(contract.FlagOptimizer, hp.Optimizer),
		arg(contract.FlagSeed, strconv.FormatInt(hp.Seed, 10)),
		arg(contract.FlagLogFormat, contract.LogFormatJSON),
		arg(contract.FlagScratchDir, contract.ScratchDir),
		arg(contract.FlagMaxDatasetBytes, strconv.FormatInt(maxDatasetBytes(&spec.Resources), 10)),
	}
	if threads := trainerThreads(spec.Resources.CPU); threads > 0 {
		args = append(args, arg(contract.FlagThreads, strconv.Itoa(threads)))
	}
	if ck := spec.Checkpoint; ck != nil {
		args = append(args,
			arg(contract.FlagCheckpointURI, ck.URI),
			arg(contract.FlagCheckpointEvery, strconv.Itoa(int(ck.EveryEpochs))),
			arg(contract.FlagCheckpointKeep, strconv.Itoa(int(ck.Keep))),
		)
	}
	if target := hp.TargetTestAccuracy; target != nil {
		args = append(args, arg(contract.FlagTargetTestAccuracy, strconv.FormatFloat(*target, 'g', -1, 64)))
	}
	if from := resumeFrom(tj); from != "" {
		args = append(args, arg(contract.FlagResumeFrom, from))
	}
	// Admission lets a plain http:// endpoint through only where the job opted in.
	if spec.Dataset.AllowPlainHTTP || (spec.Checkpoint != nil && spec.Checkpoint.AllowPlainHTTP) {
		args = append(args, arg(contract.FlagAllowPlainHTTP, "true"))
	}
	return args
}

// defaultScratch is the scratch volume's size limit when the job sets none.
var defaultScratch = resource.MustParse("10Gi")

func scratchSize(r *kubetrainv1alpha1.WorkerResources) resource.Quantity {
	if r.Scratch != nil {
		return *r.Scratch
	}
	return defaultScratch
}

// maxDatasetBytes is what the trainer may download into scratch: nine tenths of it, leaving room
// for its temporary files, so that a dataset too large fails with an error naming it rather than
// an eviction by the kubelet for a full volume.
func maxDatasetBytes(r *kubetrainv1alpha1.WorkerResources) int64 {
	q := scratchSize(r)
	return max(q.Value()/10*9, 1)
}

// trainerThreads is the number of compute threads for a worker that requests cpu: the request
// rounded up. Without it the trainer would start a thread per CPU of the node and crowd out its
// neighbours, since the worker has no CPU limit. Zero (no request) leaves the choice to the trainer.
func trainerThreads(cpu *resource.Quantity) int {
	if cpu == nil || cpu.Sign() <= 0 {
		return 0
	}
	return int((cpu.MilliValue() + 999) / 1000)
}

// resumeFrom is the checkpoint a new attempt starts from: the latest one the trainer recorded in
// status, else the one the spec names.
func resumeFrom(tj *kubetrainv1alpha1.TrainingJob) string {
	if ck := tj.Status.LatestCheckpoint; ck != nil && ck.URI != "" && ownCheckpoint(tj, ck.URI) {
		return ck.URI
	}
	if tj.Spec.Checkpoint != nil {
		return tj.Spec.Checkpoint.ResumeFrom
	}
	return ""
}

// trainerEnv tells the worker who it is and hands it storage credentials by Secret reference only:
// the controller never reads a Secret. A missing Secret surfaces in the pod's status as
// CreateContainerConfigError, which the controller reports as a condition.
func trainerEnv(tj *kubetrainv1alpha1.TrainingJob, rank int32) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: contract.EnvJobNamespace, Value: tj.Namespace},
		{Name: contract.EnvJobName, Value: tj.Name},
		{Name: contract.EnvJobUID, Value: string(tj.UID)},
		{Name: contract.EnvAttempt, Value: strconv.Itoa(int(tj.Status.Attempt))},
		{Name: contract.EnvRank, Value: strconv.Itoa(int(rank))},
		{Name: contract.EnvWorldSize, Value: strconv.Itoa(int(tj.Spec.Workers))},
		{Name: contract.EnvPodName, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
		}},
		{Name: contract.EnvPodIP, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"},
		}},
		// Go sizes its thread pool from the CPU limit; TMPDIR must be writable.
		{Name: "TMPDIR", Value: contract.ScratchDir},
		// Never fall back to a cloud metadata endpoint for credentials.
		{Name: "AWS_EC2_METADATA_DISABLED", Value: "true"},
	}
	if tj.Spec.Workers > 1 {
		env = append(env, corev1.EnvVar{Name: contract.EnvRendezvous, Value: rendezvous(tj)})
	}
	// The checkpoints' Secret (else the dataset's) under the SDK's own names; the dataset's also
	// under its prefix, so that both reach the worker when they differ.
	storage := tj.Spec.Dataset.CredentialsSecretName
	if ck := tj.Spec.Checkpoint; ck != nil && ck.CredentialsSecretName != "" {
		storage = ck.CredentialsSecretName
	}
	env = append(env, secretCredentials(storage, "")...)
	return append(env, secretCredentials(tj.Spec.Dataset.CredentialsSecretName, contract.EnvDatasetCredentials)...)
}

// secretCredentials references the credentials keys of a Secret as environment variables, their
// names prefixed; none without a Secret.
func secretCredentials(secret kubetrainv1alpha1.SecretName, prefix string) []corev1.EnvVar {
	if secret == "" {
		return nil
	}
	ref := func(key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: prefix + key, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: string(secret)},
			Key:                  key,
			Optional:             ptr.To(optional),
		}}}
	}
	return []corev1.EnvVar{
		ref(contract.SecretKeyAccessKeyID, false),
		ref(contract.SecretKeySecretAccessKey, false),
		ref(contract.SecretKeySessionToken, true),
	}
}

func gpuResourceName(r *kubetrainv1alpha1.WorkerResources) string {
	if r.GPUResourceName == "" {
		return "nvidia.com/gpu"
	}
	return r.GPUResourceName
}

// workerResources requests the GPUs (request equals limit, as extended resources require), the CPU,
// and the memory (limited to the request: a trainer that outgrows it should fail visibly rather
// than be the node's OOM victim of choice).
func workerResources(r *kubetrainv1alpha1.WorkerResources) corev1.ResourceRequirements {
	var req corev1.ResourceRequirements
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
	}
	if r.GPUs > 0 {
		q := *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
		set(&req.Requests, corev1.ResourceName(gpuResourceName(r)), q)
		set(&req.Limits, corev1.ResourceName(gpuResourceName(r)), q)
	}
	if r.CPU != nil {
		set(&req.Requests, corev1.ResourceCPU, *r.CPU)
	}
	if r.Memory != nil {
		set(&req.Requests, corev1.ResourceMemory, *r.Memory)
		set(&req.Limits, corev1.ResourceMemory, *r.Memory)
	}
	return req
}
