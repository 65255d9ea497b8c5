// nfs-subdir-provisioner: dynamic NFS provisioning for m2mcloud, same design and same settings as
// kubernetes-sigs/nfs-subdir-external-provisioner (which the Go module proxy does not serve).
//
// The NFS export is mounted into this pod at /persistentvolumes. Each claim gets a sub-directory
// <namespace>-<pvc>-<pv>; the PersistentVolume is an in-tree `nfs:` volume pointing at
// NFS_SERVER:NFS_PATH/<sub-directory> (nodes need the NFS client). Deleting the volume removes the
// directory (no archiveOnDelete: use reclaimPolicy Retain to keep data).
// Environment: NFS_SERVER, NFS_PATH, PROVISIONER_NAME (all required); LEASE_DURATION,
// RENEW_DEADLINE, RETRY_PERIOD (leader election, Go durations such as 120s; empty = the library's
// 15s, 10s, 2s). A slow API server (an emulated control plane) needs longer ones: with the
// defaults the provisioner lost its lease, exited and sat in crash-loop back-off while claims waited.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// version is set at build time (-X main.version=...).
var version = "dev"

const mountRoot = "/persistentvolumes"

type nfsProvisioner struct{ server, path string }

func (p *nfsProvisioner) Provision(ctx context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	if o.PVC.Spec.Selector != nil {
		return nil, controller.ProvisioningFinished, errors.New("claim Selector is not supported")
	}
	dir := strings.Join([]string{o.PVC.Namespace, o.PVC.Name, o.PVName}, "-")
	full := filepath.Join(mountRoot, dir)
	if err := os.MkdirAll(full, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("create %s: %w", full, err)
	}
	if err := os.Chmod(full, 0o777); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("chmod %s: %w", full, err)
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   o.PVC.Spec.AccessModes,
			MountOptions:                  o.StorageClass.MountOptions,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: o.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				NFS: &v1.NFSVolumeSource{Server: p.server, Path: filepath.Join(p.path, dir)},
			},
		},
	}
	return pv, controller.ProvisioningFinished, nil
}

func (p *nfsProvisioner) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.NFS == nil {
		return errors.New("not an NFS volume")
	}
	rel, err := filepath.Rel(p.path, pv.Spec.NFS.Path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.Contains(rel, "/") {
		return fmt.Errorf("path %q is not a sub-directory of %q", pv.Spec.NFS.Path, p.path)
	}
	full := filepath.Join(mountRoot, rel)
	if _, err := os.Stat(full); os.IsNotExist(err) {
		return nil
	}
	return os.RemoveAll(full)
}

// leaderElectionOptions reads LEASE_DURATION, RENEW_DEADLINE and RETRY_PERIOD; it refuses values
// client-go's leader elector would panic on later (it needs lease > renew > retry x jitter).
func leaderElectionOptions(getenv func(string) string) ([]func(*controller.ProvisionController) error, error) {
	durations := map[string]time.Duration{
		"LEASE_DURATION": controller.DefaultLeaseDuration,
		"RENEW_DEADLINE": controller.DefaultRenewDeadline,
		"RETRY_PERIOD":   controller.DefaultRetryPeriod,
	}
	for key := range durations {
		raw := getenv(key)
		if raw == "" {
			continue
		}
		d, err := time.ParseDuration(raw)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s=%q is not a positive duration such as 120s", key, raw)
		}
		durations[key] = d
	}
	lease, renew, retry := durations["LEASE_DURATION"], durations["RENEW_DEADLINE"], durations["RETRY_PERIOD"]
	if lease <= renew {
		return nil, fmt.Errorf("LEASE_DURATION (%s) must be longer than RENEW_DEADLINE (%s)", lease, renew)
	}
	if float64(renew) <= leaderelection.JitterFactor*float64(retry) {
		return nil, fmt.Errorf("RENEW_DEADLINE (%s) must be longer than %.1f x RETRY_PERIOD (%s)",
			renew, leaderelection.JitterFactor, retry)
	}
	klog.Infof("leader election: lease %s, renew deadline %s, retry period %s", lease, renew, retry)
	return []func(*controller.ProvisionController) error{
		controller.LeaseDuration(lease), controller.RenewDeadline(renew), controller.RetryPeriod(retry),
	}, nil
}

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("nfs-subdir-provisioner", version)
		return
	}
	server, path, name := os.Getenv("NFS_SERVER"), os.Getenv("NFS_PATH"), os.Getenv("PROVISIONER_NAME")
	if server == "" || path == "" || name == "" {
		klog.Fatal("NFS_SERVER, NFS_PATH and PROVISIONER_NAME must all be set")
	}
	election, err := leaderElectionOptions(os.Getenv)
	if err != nil {
		klog.Fatal(err)
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		klog.Fatal(err)
	}
	klog.Infof("nfs-subdir-provisioner %s: %s for %s:%s", version, name, server, path)
	cs := kubernetes.NewForConfigOrDie(cfg)
	p := &nfsProvisioner{server: server, path: path}
	pc := controller.NewProvisionController(context.Background(), cs, name, p, election...)
	pc.Run(context.Background())
}
