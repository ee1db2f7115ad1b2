# The build cache lives in build/ (kept between runs, keyed by version);
# the images a user boots land in out/.
SHELL := /bin/bash
BUILD ?= $(CURDIR)/build
OUT ?= $(CURDIR)/out
ROLE ?= server
GO ?= go
export SOURCE_DATE_EPOCH ?= 1735689600

# Debian packages the build and the tests need. xorriso is the bench
# baseline; it, squashfs-tools, e2fsprogs and the tools after it make the
# images the state probe's tests read (mount has losetup, for pvcreate).
# vde2 is the private network the cluster tests put their machines on.
DEB_PKGS := qemu-system-x86 ovmf seabios grub-pc-bin grub-efi-amd64-bin grub-common \
	kmod xorriso squashfs-tools libseccomp-dev zstd qemu-utils e2fsprogs \
	btrfs-progs xfsprogs dosfstools util-linux mount cryptsetup-bin lvm2 mdadm vde2

KERNEL_PKG = $(shell cat $(BUILD)/kernel-pkg 2>/dev/null)
KERNEL_DIR = $(BUILD)/kernel/$(KERNEL_PKG)
GRUB_DIR := $(BUILD)/grub
BIN := $(BUILD)/bin

.PHONY: all deps image images boot test unit qemu-test multinode-test ha-test ha-restore-test install-test upgrade-test node-test bench clean tools e2e e2e-smoke conformance-images conformance

# The RKE2 version the images run; images/versions.env pins every part of it.
RKE2_VERSION := $(shell sed -n 's/^RKE2_VERSION=//p' images/versions.env)
KUBERNETES_VERSION := $(shell sed -n 's/^KUBERNETES_VERSION=//p' images/versions.env)
IMAGES := $(BUILD)/images/rke2-images.linux-amd64.tar.zst
all: image

# deps installs the Debian packages once; a stamp keeps reruns instant (and
# is made again when this file, and so DEB_PKGS, changes).
deps: $(BUILD)/deps.stamp
$(BUILD)/deps.stamp: Makefile
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

# The kernel is Debian's linux-image-amd64, fetched with apt-get download and
# unpacked into the cache under its exact package name (the version).
kernel: deps
	@mkdir -p $(BUILD)/kernel
	@pkg=$$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $$2; exit}'); \
	if [ -z "$$pkg" ]; then apt-get update -qq; pkg=$$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $$2; exit}'); fi; \
	test -n "$$pkg" || { echo "cannot resolve linux-image-amd64"; exit 1; }; \
	echo $$pkg > $(BUILD)/kernel-pkg; \
	dir=$(BUILD)/kernel/$$pkg; \
	if [ ! -f $$dir/.done ]; then \
		rm -rf $$dir && mkdir -p $$dir/deb && cd $$dir/deb && apt-get download -qq $$pkg 2>/dev/null && cd .. && \
		dpkg-deb -x deb/*.deb root && ver=$${pkg#linux-image-} && \
		depmod -b root $$ver && \
		ln -sf root/boot/vmlinuz-$$ver vmlinuz && ln -sfn root/lib lib && touch .done; \
	fi

# GRUB images are prepared once with GRUB's own tool; the builder places them.
# The ISO's carry an early config that finds the RKE2_BOOT volume by label.
# The raw disk's have no search: their prefix, (,gpt2), is the ESP of the
# disk GRUB was loaded from, so an installed disk boots its own system
# whatever else is attached. They are made again when this file changes.
GRUB_EARLY := $(GRUB_DIR)/early.cfg
GRUB_COMMON := search search_label configfile linux normal echo test serial terminal part_gpt part_msdos fat iso9660 ext2 gzio regexp loadenv
GRUB_DISK_PREFIX := '(,gpt2)/boot/grub'
grub: deps $(GRUB_DIR)/eltorito.img $(GRUB_DIR)/core.img $(GRUB_DIR)/bootx64.efi $(GRUB_DIR)/bootx64-iso.efi $(GRUB_DIR)/boot.img
$(GRUB_EARLY): Makefile
	@mkdir -p $(GRUB_DIR)
	printf 'search --no-floppy --label RKE2_BOOT --set=root\nset prefix=($$root)/boot/grub\nconfigfile ($$root)/boot/grub/grub.cfg\n' > $@
$(GRUB_DIR)/eltorito.img: $(GRUB_EARLY)
	grub-mkimage -O i386-pc-eltorito -p /boot/grub -c $< -o $@ biosdisk $(GRUB_COMMON)
$(GRUB_DIR)/bootx64-iso.efi: $(GRUB_EARLY)
	grub-mkimage -O x86_64-efi -p /boot/grub -c $< -o $@ efi_gop all_video $(GRUB_COMMON)
$(GRUB_DIR)/core.img: Makefile
	@mkdir -p $(GRUB_DIR)
	grub-mkimage -O i386-pc -p $(GRUB_DISK_PREFIX) -o $@ biosdisk $(GRUB_COMMON)
$(GRUB_DIR)/bootx64.efi: Makefile
	@mkdir -p $(GRUB_DIR)
	grub-mkimage -O x86_64-efi -p $(GRUB_DISK_PREFIX) -o $@ efi_gop all_video $(GRUB_COMMON)
$(GRUB_DIR)/boot.img:
	cp /usr/lib/grub/i386-pc/boot.img $@

tools:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/rke2-init ./cmd/rke2-init
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/rke2-node ./cmd/rke2-node
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/rke2-build ./cmd/rke2-build

# images builds RKE2's images from source (containerd, runc, kubelet, etcd, ...)
# into build/images, cached by version in build/cache: a rerun takes seconds.
images: deps
	images/build.sh $(BUILD)/images $(BUILD)/cache

# image builds the role's ISO, raw disk and PXE files into out/.
image: deps kernel grub tools images
	$(BIN)/rke2-build image --role $(ROLE) --output $(OUT) \
		--kernel $(KERNEL_DIR) --grub $(GRUB_DIR) --init $(BIN)/rke2-init --node $(BIN)/rke2-node --overlays overlays --rootfs $(BUILD)/cache/iptables/root \
		--version $(RKE2_VERSION) --images $(IMAGES)

# boot starts the ISO in QEMU with the serial console on this terminal (Ctrl-A X quits).
boot:
	qemu-system-x86_64 -machine q35 -m 2048 -smp 2 -nographic -cdrom $(OUT)/rke2-$(ROLE).iso \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0 -device virtio-rng-pci

# The unit tests make filesystem images with Debian's tools (DEB_PKGS).
unit: deps
	$(GO) vet ./...
	$(GO) vet -tags hatest ./qemu-test/
	$(GO) vet -tags multinode ./qemu-test/
	$(GO) vet -tags installtest ./qemu-test/
	$(GO) vet -tags upgradetest ./qemu-test/
	$(GO) vet -tags conformance ./qemu-test/
	$(GO) vet -tags nodetest ./qemu-test/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test $$($(GO) list ./... | grep -v /qemu-test$$)

# qemu-test boots the images built above; it needs `make image` for both
# roles, and the e2e binary of the few conformance tests the cluster test
# runs (e2e-smoke).
qemu-test: image e2e-smoke
	$(MAKE) image ROLE=agent
	RKE2_REQUIRE_IMAGES=1 $(GO) test -count=1 ./images/
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst \
		RKE2_E2E=$(E2E_SMOKE) RKE2_KUBECTL=$(BUILD)/cache/kubernetes-$(KUBERNETES_VERSION)/kubectl RKE2_CONFORMANCE_DIR=$(BUILD)/conformance/smoke \
		$(GO) test -count=1 -timeout 75m -v ./...

test: unit qemu-test

# multinode-test boots a server and joins an agent to it (pods across the
# nodes, the supervisor's answers per token), upgrades both through one
# UpgradePlan (the server first, then the agent), and refuses joins: about
# 50 minutes on 2 cores, more than CI's budget leaves beside the other boot
# tests, so it runs on its own.
multinode-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags multinode -count=1 -timeout 90m -run 'TestAgents$$' -v .

# ha-test boots three servers into one cluster (etcd learners promoted, one
# server powered off and back, a deleted server's member removed): over an
# hour, more than CI's budget leaves, so it runs on its own. Under TCG an
# idle server's QEMU takes over a host core: three need three to four, and
# on 2 cores it does not pass (see the README).
ha-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags hatest -count=1 -timeout 90m -run 'TestHA$$' -v .

# ha-restore-test boots two servers into one cluster, restores the first
# from a snapshot and waits for the second to rejoin the restored cluster by
# itself, then starts both at once: about an hour under TCG on 2 cores,
# more than CI's budget leaves, so it runs on its own.
ha-restore-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags hatest -count=1 -timeout 110m -run 'TestHARestore$$' -v .

# node-test boots the live ISO through an unplugged cable, a clock years
# behind and a refused restore, the raw disk through power cuts, disk
# growth and an unreadable state, and a slot that cannot boot (rolled
# back), then a reset: about 18 minutes under TCG on 2 cores, which CI's
# budget does not hold beside the cluster test, so it runs on its own.
node-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags nodetest -count=1 -timeout 60m -run 'TestNodeRunsEtcd$$|TestNodeRawDisk$$|TestSlotRollback$$' -v .

# install-test boots the server ISO that installs itself onto a blank disk,
# the disk's first boot to node-ready, and an ISO boot refusing the
# installed disk: three boots, one a full node start, about 7 minutes under
# TCG on 2 cores (398 s on 2026-12-07), so it runs on its own.
install-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags installtest -count=1 -timeout 60m -run 'TestInstall$$' -v .

# upgrade-test boots one server and asks it, plan after plan, for an
# artifact of another key (refused, nothing written), a broken image
# (tried, rolled back) and a good one with the power cut while it is
# written (carried out again): about 25 minutes under TCG on 2 cores
# (1464 s on 2026-12-06), so it runs on its own.
upgrade-test: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst $(GO) test -tags upgradetest -count=1 -timeout 80m -run 'TestUpgradeFailures$$' -v .

# e2e builds Kubernetes' e2e.test of the cluster's version (for make
# conformance), cached by version beside the images.
E2E := $(BUILD)/cache/e2e-$(KUBERNETES_VERSION)/e2e.test
e2e: images
	images/build.sh $(BUILD)/images $(BUILD)/cache e2e

# e2e-smoke builds the e2e binary of make test's conformance smoke:
# Kubernetes' own suite setup and the API machinery, auth and network
# suites only (images/e2esmoke): a sixth less to build than e2e.test.
E2E_SMOKE := $(BUILD)/cache/e2e-smoke-$(KUBERNETES_VERSION)/e2e-smoke.test
e2e-smoke: images
	images/build.sh $(BUILD)/images $(BUILD)/cache e2e-smoke

# conformance-images builds the images Kubernetes' conformance tests run
# (agnhost, busybox, httpd, nginx, ... under the names the tests pull) into
# their own archive, never RKE2's nor the QEMU tests'.
CONFORMANCE_IMAGES := $(BUILD)/images/rke2os-conformance-images.linux-amd64.tar.zst
conformance-images: images
	images/build.sh $(BUILD)/images $(BUILD)/cache conformance-images
	RKE2_REQUIRE_CONFORMANCE_IMAGES=1 $(GO) test -count=1 -run TestConformanceImages ./images/

# conformance boots a server and runs Kubernetes' own [Conformance] tests
# against it with e2e.test: by default the set of
# qemu-test/conformance/sets.go, every SIG's that fit an hour under TCG
# (CONFORMANCE_FOCUS, CONFORMANCE_SKIP choose another, CONFORMANCE_TIMEOUT
# the time budget); the JUnit report and the summary land in
# build/conformance.
conformance: image e2e conformance-images
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst \
		RKE2_CONFORMANCE_IMAGES=$(CONFORMANCE_IMAGES) \
		RKE2_E2E=$(E2E) RKE2_KUBECTL=$(BUILD)/cache/kubernetes-$(KUBERNETES_VERSION)/kubectl RKE2_CONFORMANCE_DIR=$(BUILD)/conformance \
		$(GO) test -tags conformance -count=1 -timeout 0 -run 'TestConformance$$' -v .

bench: image
	cd qemu-test && RKE2_OUT=$(OUT) RKE2_KERNEL=$(KERNEL_DIR) RKE2_BIN=$(BIN) RKE2_GRUB=$(GRUB_DIR) RKE2_IMAGES=$(IMAGES) RKE2_TEST_IMAGES=$(BUILD)/images/rke2os-test-images.linux-amd64.tar.zst RKE2_VERSION=$(RKE2_VERSION) $(GO) run ./cmd/bench $(BENCH_ARGS)

clean:
	rm -rf $(OUT)
