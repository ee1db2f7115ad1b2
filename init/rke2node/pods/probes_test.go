package pods

import "testing"

func TestSetProbes(t *testing.T) {
	api := KubeAPIServerPod(KubeAPIServerOptions{ControlPlane: ControlPlane{Image: "k:1", NodeName: "n", NodeIP: "10.0.0.1"}})
	SetProbes(api, map[string]int32{
		"kube-apiserver-liveness-period-seconds":    30,
		"kube-apiserver-liveness-failure-threshold": 20,
		"kube-apiserver-readiness-period-seconds":   1, // an exec probe: at most every 5 s
		"kube-scheduler-liveness-period-seconds":    99,
	})
	c := api.Spec.Containers[0]
	if p := c.LivenessProbe; p.PeriodSeconds != 30 || p.FailureThreshold != 20 || p.TimeoutSeconds != 15 || p.InitialDelaySeconds != 10 {
		t.Errorf("liveness %+v", p)
	}
	if p := c.ReadinessProbe; p.PeriodSeconds != 5 || p.FailureThreshold != 3 {
		t.Errorf("readiness %+v", p)
	}
	if p := c.StartupProbe; p.PeriodSeconds != 10 || p.FailureThreshold != 24 {
		t.Errorf("startup, not named: %+v", p)
	}

	// kube-proxy has a liveness probe only: none is added.
	kp := KubeProxyPod(KubeProxyOptions{Image: "k:1", NodeName: "n", NodeIP: "10.0.0.1"})
	SetProbes(kp, map[string]int32{"kube-proxy-readiness-period-seconds": 3, "kube-proxy-liveness-timeout-seconds": 2})
	if c := kp.Spec.Containers[0]; c.ReadinessProbe != nil || c.LivenessProbe.TimeoutSeconds != 2 || c.LivenessProbe.PeriodSeconds != 10 {
		t.Errorf("kube-proxy: readiness %+v, liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	etcd := EtcdPod(EtcdOptions{Image: "e:1", NodeName: "n", NodeIP: "10.0.0.1"})
	SetProbes(etcd, map[string]int32{"etcd-liveness-failure-threshold": 30})
	if p := etcd.Spec.Containers[0].LivenessProbe; p.FailureThreshold != 30 || p.PeriodSeconds != 10 {
		t.Errorf("etcd liveness %+v", p)
	}
}
