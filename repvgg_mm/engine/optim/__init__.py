# optimizer parts (custom L2) registered in mmengine's registries
